"""Label config parsing: the Labels→Text pair, read from the config, and clear errors."""

from __future__ import annotations

import pytest

from lasl_backend.labelstudio.labelconfig import LabelConfigError, parse_label_config

CFG = """<View>
  <Header value="病历"/>
  <Labels name="ent" toName="doc">
    <Label value="症状" background="red"/>
    <Label value="检查"/>
    <Label value="药品"/>
  </Labels>
  <Text name="doc" value="$content"/>
</View>"""


def test_pair_key_and_labels_come_from_the_config() -> None:
    ner = parse_label_config(CFG)
    assert (ner.from_name, ner.to_name, ner.value_key) == ("ent", "doc", "content")
    assert ner.labels == ("症状", "检查", "药品")


def test_other_controls_are_ignored() -> None:
    cfg = CFG.replace("</View>", '<Choices name="q" toName="doc"><Choice value="好"/></Choices></View>')
    assert parse_label_config(cfg).from_name == "ent"


TWO = """<View>
  <Labels name="a" toName="t1"><Label value="甲"/></Labels>
  <Text name="t1" value="$text"/>
  <Labels name="b" toName="t2"><Label value="乙"/></Labels>
  <Text name="t2" value="$other"/>
</View>"""


def test_several_pairs_fail_unless_one_is_named() -> None:
    with pytest.raises(LabelConfigError, match="several"):
        parse_label_config(TWO)
    ner = parse_label_config(TWO, labels_name="b")
    assert (ner.from_name, ner.to_name, ner.value_key, ner.labels) == ("b", "t2", "other", ("乙",))
    with pytest.raises(LabelConfigError, match="zzz"):
        parse_label_config(TWO, labels_name="zzz")


@pytest.mark.parametrize(
    "cfg, needle",
    [
        ("<View><Labels name='x' toName='t'>", "well-formed"),
        ("", "empty"),
        ("   ", "empty"),
        ("<View><Text name='t' value='$text'/></View>", "no <Labels>"),
        ("<View><Labels name='x' toName='img'><Label value='a'/></Labels><Image name='img' value='$image'/></View>", "no <Labels>"),
        ("<View><Labels name='x' toName='t'></Labels><Text name='t' value='$text'/></View>", "no <Label"),
        ("<View><Labels name='x' toName='t'><Label value='a'/></Labels><Text name='t' value='text'/></View>", "task field"),
        ('<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><View>&b;</View>', "DOCTYPE"),
        ('<!DOCTYPE v [<!ENTITY x SYSTEM "file:///etc/passwd">]><View><Text name="t" value="$text">&x;</Text></View>', "DOCTYPE"),
        ("<View>\x00</View>", "NUL"),
    ],
)
def test_malformed_or_hostile_configs_are_rejected_clearly(cfg: str, needle: str) -> None:
    with pytest.raises(LabelConfigError, match=needle):
        parse_label_config(cfg)


@pytest.mark.parametrize("cfg", [None, 5, ["<View/>"], {"a": 1}])
def test_non_string_config(cfg: object) -> None:
    with pytest.raises(LabelConfigError, match="string"):
        parse_label_config(cfg)


def test_oversized_config() -> None:
    big = "<View>" + "<Header value='x'/>" * 60_000 + "</View>"
    with pytest.raises(LabelConfigError, match="too large"):
        parse_label_config(big)


def test_cached_errors_are_raised_again() -> None:
    for _ in range(2):
        with pytest.raises(LabelConfigError):
            parse_label_config("<View><broken")
