"""Synthetic Chinese EMR records with gold entities, for tests and the demo.

Why: the CCKS 2019 data is research-only and must never enter the repository, but tests, the demo
and the end-to-end suite still need realistic-looking clinical text with exact gold spans. Every
sentence template and slot word below was written for this module; nothing is taken from CCKS.

The generator exercises the things that break NER pipelines: adjacent entities, Latin/digit runs
(``4*2.8*2.5CM``, ``HbA1c``), full-width punctuation and spaces, and astral characters (😀, 𠀀)
*before* entities, so code-point vs UTF-16 offset bugs show up (Label Studio counts code points, like
Python's ``str``: docs/serving.md, "Label Studio facts").

Offsets are Python ``str`` (code point) indices, end-exclusive, and every entity is checked with
``text[start:end] == surface`` while it is built.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence

from ..data import Entity, Record

__all__ = ["LABELS", "SLOTS", "demo_records", "make_record", "make_records"]

#: The six CCKS 2019 labels, in the order the label configs of the demo and the benchmark projects list them.
LABELS: tuple[str, ...] = ("疾病和诊断", "影像检查", "实验室检验", "手术", "药物", "解剖部位")

# Template keys: one letter per label, so templates stay readable.
_KEY_TO_LABEL: dict[str, str] = {
    "D": "疾病和诊断",
    "I": "影像检查",
    "L": "实验室检验",
    "O": "手术",
    "M": "药物",
    "A": "解剖部位",
}

#: Slot words per label (generic clinical vocabulary, written for this module).
SLOTS: dict[str, tuple[str, ...]] = {
    "疾病和诊断": (
        "2型糖尿病",
        "高血压病3级",
        "冠状动脉粥样硬化性心脏病",
        "肺腺癌",
        "胃癌",
        "直肠腺癌",
        "乳腺浸润性导管癌",
        "慢性乙型病毒性肝炎",
        "肝硬化",
        "社区获得性肺炎",
        "急性阑尾炎",
        "胆囊结石伴慢性胆囊炎",
        "甲状腺乳头状癌",
        "脑梗死",
        "慢性肾功能不全",
        "贫血",
        "骨质疏松",
        "COPD",
        "房颤",
        "腰椎间盘突出症",
        "子宫肌瘤",
        "前列腺增生",
        "肝转移",
        "淋巴结转移",
        "上呼吸道感染",
        "低钾血症",
        "痛风",
        "Ⅱ型呼吸衰竭",
    ),
    "影像检查": (
        "CT",
        "胸部CT",
        "腹部增强CT",
        "MRI",
        "头颅MRI",
        "B超",
        "腹部B超",
        "彩超",
        "心脏彩超",
        "PET-CT",
        "X线",
        "胸片",
        "钼靶",
        "ECT骨扫描",
        "DR",
        "CTA",
        "MRCP",
    ),
    "实验室检验": (
        "血常规",
        "尿常规",
        "便常规",
        "肝功能",
        "肾功能",
        "HbA1c",
        "CEA",
        "CA19-9",
        "CA125",
        "AFP",
        "PSA",
        "WBC",
        "HGB",
        "PLT",
        "ALT",
        "AST",
        "肌酐",
        "尿素氮",
        "血钾",
        "D-二聚体",
        "C反应蛋白",
        "降钙素原",
        "凝血功能",
        "空腹血糖",
        "HBV-DNA",
        "ESR",
    ),
    "手术": (
        "腹腔镜下胆囊切除术",
        "直肠癌根治术",
        "胃癌根治术（D2）",
        "左肺上叶切除术",
        "阑尾切除术",
        "甲状腺全切术",
        "乳腺癌改良根治术",
        "经皮冠状动脉介入治疗",
        "PCI术",
        "全髋关节置换术",
        "TURP",
        "肝部分切除术",
        "右半结肠切除术",
        "ESD",
        "胸腔闭式引流术",
        "剖宫产术",
    ),
    "药物": (
        "阿司匹林",
        "氯吡格雷",
        "阿托伐他汀钙片",
        "二甲双胍",
        "胰岛素",
        "甘精胰岛素",
        "奥美拉唑",
        "头孢哌酮舒巴坦",
        "左氧氟沙星",
        "奥沙利铂",
        "卡培他滨",
        "紫杉醇",
        "顺铂",
        "吉西他滨",
        "贝伐珠单抗",
        "替吉奥",
        "氨氯地平",
        "美托洛尔",
        "呋塞米",
        "螺内酯",
        "华法林",
        "低分子肝素",
        "地塞米松",
        "恩替卡韦",
        "XELOX",
        "FOLFOX4",
    ),
    "解剖部位": (
        "左肺",
        "右肺上叶",
        "肝",
        "胆囊",
        "胃窦",
        "直肠",
        "乙状结肠",
        "腹部",
        "胸部",
        "头颅",
        "左乳",
        "右乳外上象限",
        "甲状腺",
        "颈部",
        "腋窝",
        "双下肢",
        "腰椎",
        "心脏",
        "肾",
        "胰腺",
        "脾",
        "盆腔",
        "腹膜后",
        "纵隔",
        "锁骨上",
        "左侧",
        "右下腹",
        "皮肤",
        "巩膜",
    ),
}

# Non-entity fillers (lowercase keys) that carry digits, Latin runs and full-width characters.
_SECTIONS: tuple[str, ...] = (
    "主诉：",
    "现病史：",
    "既往史：",
    "体格检查：",
    "辅助检查：",
    "诊疗经过：",
    "手术经过：",
    "术后病理：",
    "出院诊断：",
    "出院医嘱：",
)
_FEELINGS: tuple[str, ...] = ("😀", "🙂", "💊", "𠀀", "𠀁", "𪚥", "𡃁")

# Each template is one clinical sentence. {X} with an upper-case key is an entity slot of that
# label; lower-case keys are plain text fillers. Adjacent slots ({A}{D}) give touching entities.
_TEMPLATES: tuple[str, ...] = (
    "患者{n}月前无明显诱因出现{A}疼痛，伴{A}不适，遂就诊于我院。",
    "患者{n}年前因“{D}”于我院行{O}，术后恢复可。",
    "{date}在全麻下行{O}，手术顺利，术后予{M}抗感染治疗。",
    "查{I}示：{A}见一大小约{size}的占位，考虑{D}可能。",
    "{I}提示{A}{D}，{A}未见明显异常。",
    "复查{I}：{A}多发结节，最大者约{size}，较前增大。",
    "{L}：{lab}，{L}：{lab}，{L}正常。",
    "入院后查{L}示{L} {lab}，{L} {lab}。",
    "术后病理示：（{A}）{D}，{grade}，肿块大小{size}，侵及浆膜层。",
    "免疫组化：ERCC1（+），TS（{pm}），Ki-67约{pct}。",
    "既往有{D}病史{n}年，长期口服{M} {dose}，血压控制可。",
    "否认{D}、{D}等慢性病史，否认药物过敏史。",
    "予{M}+{M}方案化疗{n}周期，过程顺利，无明显不良反应。",
    "给予{M}{dose}静滴，{M}{dose}口服，并予护胃、补液等对症支持治疗。",
    "查体：神清，{A}无黄染，{A}未触及肿大淋巴结，{A}无压痛。",
    "T {temp}℃，P {n2}次/分，R {n2}次/分，BP {bp}mmHg。",
    "出院诊断：1.{D}　2.{D}　3.{D}",
    "{date}行{I}检查，结果示{A}{D}，建议进一步行{I}。",
    "患者于{date}出现{D}，予{M}治疗后好转出院。",
    "今为进一步治疗，门诊拟“{D}”收入我科。",
    "{L}、{L}、{L}未见明显异常。",
    "患者精神可，饮食、睡眠一般，大小便正常，体重无明显变化。",
    "家属诉患者近{n}天情绪{mood}，诉“{feel}”。",
    "出院医嘱：继续口服{M}，{n}周后复查{L}、{I}，不适随诊。",
    "于{date}行{O}+{O}，术中见{A}与{A}粘连。",
    "心电图示：窦性心律，HR {n2}bpm。",
)

_SLOT_RE = re.compile(r"\{([A-Za-z0-9]+)\}")


def _filler(key: str, rng: random.Random) -> str:
    """Plain-text value for a lower-case template key (never part of an entity)."""
    if key == "n":
        return str(rng.randint(1, 12))
    if key == "n2":
        return str(rng.randint(12, 130))
    if key == "date":
        return f"{rng.randint(2008, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if key == "size":
        dims = [f"{rng.randint(1, 9)}.{rng.randint(0, 9)}" for _ in range(rng.randint(2, 3))]
        return "*".join(dims) + rng.choice(("CM", "cm", "mm", "MM"))
    if key == "lab":
        return f"{rng.uniform(0.1, 300):.{rng.randint(0, 2)}f}{rng.choice(('mmol/L', 'g/L', 'U/L', 'ng/ml', '%', '×10^9/L'))}"
    if key == "dose":
        return f"{rng.choice((0.5, 1, 2, 5, 10, 20, 40, 75, 100, 500))}{rng.choice(('mg', 'g', 'u', 'ml'))} {rng.choice(('qd', 'bid', 'tid', 'q8h', 'ivgtt'))}"
    if key == "grade":
        return rng.choice(("中分化", "中低分化", "高分化", "低分化", "pT3N1M0"))
    if key == "pm":
        return rng.choice(("+", "-", "+++", "弱+"))
    if key == "pct":
        return f"{rng.randint(1, 90)}%"
    if key == "temp":
        return f"{rng.uniform(36.0, 39.5):.1f}"
    if key == "bp":
        return f"{rng.randint(95, 180)}/{rng.randint(55, 105)}"
    if key == "mood":
        return rng.choice(("尚可", "低落", "焦虑", "平稳"))
    if key == "feel":
        return rng.choice(_FEELINGS) + rng.choice(("还好", "有点累", "想回家"))
    raise KeyError(f"unknown filler key {key!r}")


def _sentence(rng: random.Random, template: str) -> tuple[str, list[tuple[int, int, str]]]:
    """Fill one template; returns the sentence and its entity spans relative to it."""
    parts: list[str] = []
    spans: list[tuple[int, int, str]] = []
    pos = 0
    last = 0
    for m in _SLOT_RE.finditer(template):
        lit = template[last : m.start()]
        parts.append(lit)
        pos += len(lit)
        key = m.group(1)
        if key in _KEY_TO_LABEL:
            label = _KEY_TO_LABEL[key]
            surface = rng.choice(SLOTS[label])
            spans.append((pos, pos + len(surface), label))
        else:
            surface = _filler(key, rng)
        parts.append(surface)
        pos += len(surface)
        last = m.end()
    parts.append(template[last:])
    return "".join(parts), spans


def _target_length(rng: random.Random, mean_chars: int, max_chars: int, sigma: float = 0.55) -> int:
    """Log-normal length with the requested mean (before the cap), as EMR record lengths are skewed."""
    mu = math.log(mean_chars) - sigma * sigma / 2.0
    return min(max_chars, max(20, int(rng.lognormvariate(mu, sigma))))


def make_record(rng: random.Random, record_id: str, target_chars: int, max_chars: int) -> Record:
    """Build one record of roughly ``target_chars`` characters (never more than ``max_chars``)."""
    text = ""
    entities: list[Entity] = []
    while True:
        piece = ""
        r = rng.random()
        if r < 0.12:
            piece += rng.choice(_SECTIONS)
        elif r < 0.17:
            piece += "　"  # full-width space between sentences, as in exported EMR text
        elif r < 0.21:
            piece += rng.choice(_FEELINGS)  # astral character before the next entities
        sentence, spans = _sentence(rng, rng.choice(_TEMPLATES))
        piece_start = len(text) + len(piece)
        piece += sentence
        if text and len(text) + len(piece) > max_chars:
            break
        if not text and len(piece) > max_chars:  # a single oversized sentence: keep only its prefix text
            text = piece[:max_chars]
            entities = [
                Entity(piece_start + s, piece_start + e, lab) for s, e, lab in spans if piece_start + e <= max_chars
            ]
            break
        text += piece
        entities.extend(Entity(piece_start + s, piece_start + e, lab) for s, e, lab in spans)
        if len(text) >= target_chars:
            break
    return Record(id=record_id, text=text, entities=entities)


def _check(record: Record, surfaces: Mapping[str, Sequence[str]]) -> None:
    """Fail loudly if an offset does not point at a slot word of its label."""
    prev_end = 0
    for ent in record.entities:
        surface = record.text[ent.start : ent.end]
        assert ent.start >= prev_end, f"{record.id}: overlapping entities"
        assert surface in surfaces[ent.label], f"{record.id}: {surface!r} is not a {ent.label}"
        prev_end = ent.end


def make_records(n: int, seed: int, mean_chars: int = 390, max_chars: int = 1700) -> list[Record]:
    """``n`` deterministic synthetic records; lengths roughly log-normal around ``mean_chars``, capped."""
    if n < 0:
        raise ValueError("n must be >= 0")
    if mean_chars < 1 or max_chars < 1:
        raise ValueError("mean_chars and max_chars must be positive")
    rng = random.Random(seed)
    records = []
    for i in range(n):
        rec = make_record(rng, f"syn-{seed}-{i:05d}", _target_length(rng, mean_chars, max_chars), max_chars)
        _check(rec, SLOTS)
        records.append(rec)
    return records


def demo_records(n: int = 40) -> list[Record]:
    """Short records for the demo, so a person can read a task at a glance in the labeling UI."""
    return make_records(n, seed=20240601, mean_chars=160, max_chars=420)
