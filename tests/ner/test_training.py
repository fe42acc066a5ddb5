"""Training: it learns, it is reproducible, it reports progress, and its options do what they say."""

from __future__ import annotations

import pytest
import torch

from lasl_backend.devtools.synthetic import make_records
from lasl_backend.ner.training import TrainConfig, TrainingCancelled, TrainingError, evaluate_model, train_lasl


@pytest.fixture(scope="module")
def records():
    return make_records(60, seed=7, mean_chars=70, max_chars=140)


def test_learns_synthetic_entities_and_reports_progress(records):
    rows = []
    # from random rows: what this checks is the training loop (LAC's small vectors learn slower in 6 epochs here)
    cfg = TrainConfig(max_epochs=6, min_steps=0, dev_fraction=0.0, seed=0, lr=5e-3, char_vectors="none")
    res = train_lasl(records[:48], config=cfg, progress=rows.append)
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    assert all({"loss", "seconds", "step"} <= set(r) for r in rows)
    assert rows[-1]["loss"] < rows[0]["loss"] / 2
    f1 = evaluate_model(res.model, records[48:])["micro"]["f1"]
    assert f1 > 0.3  # an untrained tagger scores ~0 here


def test_same_seed_same_model(records):
    cfg = TrainConfig(max_epochs=2, min_steps=0, dev_fraction=0.0, seed=3, lossnet="lpn", mean_teacher=True)
    a = train_lasl(records[:20], [r.text for r in records[20:30]], config=cfg)
    b = train_lasl(records[:20], [r.text for r in records[20:30]], config=cfg)
    for (n1, p1), (n2, p2) in zip(a.model.student.state_dict().items(), b.model.student.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


@pytest.mark.parametrize("lossnet", ["lpn", "learning_loss"])
def test_loss_net_on_a_second_thread_gives_bitwise_the_serial_weights(records, lossnet):
    """lpn_thread moves the loss net's backward and step to a helper thread; every dropout draw stays on
    the main thread in the same order, so student, teacher and loss net are bitwise equal."""
    import threading

    base = dict(max_epochs=2, min_steps=0, dev_fraction=0.0, seed=5, lossnet=lossnet, mean_teacher=True)
    serial = train_lasl(records[:20], [r.text for r in records[20:30]], config=TrainConfig(**base))
    threads_seen: set[str] = set()
    real_backward = torch.Tensor.backward

    def spy(self, *a, **k):
        threads_seen.add(threading.current_thread().name)
        return real_backward(self, *a, **k)

    torch.Tensor.backward = spy  # type: ignore[method-assign]
    try:
        split = train_lasl(records[:20], [r.text for r in records[20:30]], config=TrainConfig(**base, lpn_thread=True))
    finally:
        torch.Tensor.backward = real_backward  # type: ignore[method-assign]
    assert any(n.startswith("lpn-step") for n in threads_seen)  # the helper thread really ran backward
    for name in ("student", "teacher", "lossnet"):
        a, b = getattr(serial.model, name).state_dict(), getattr(split.model, name).state_dict()
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}.{k} differs"
    assert [h["rank_loss"] for h in serial.history] == [h["rank_loss"] for h in split.history]


def test_training_leaves_the_process_torch_threads_alone(records, monkeypatch):
    """Torch threads are set once at process start by the caller: a run (with the loss net's helper thread
    or without) never changes them."""
    calls: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    for lpn_thread in (False, True):
        cfg = TrainConfig(max_epochs=1, min_steps=0, max_steps=2, dev_fraction=0.0, lossnet="lpn", lpn_thread=lpn_thread)
        train_lasl(records[:10], config=cfg).model.predict([r.text for r in records[:20]], max_batch=2, workers=2)
    assert calls == []


def test_early_stopping_and_served_model_choice(records):
    cfg = TrainConfig(max_epochs=30, min_steps=0, dev_fraction=0.25, min_dev_records=5, min_dev_entities=0, patience=1, seed=0, mean_teacher=True)
    res = train_lasl(records[:40], config=cfg)
    assert res.n_dev == 10 and res.dev_f1 is not None
    assert len(res.history) < 30  # stopped early
    best = max(res.history, key=lambda h: h["dev_f1"])
    assert res.dev_f1 == best["dev_f1"]
    expect = "teacher" if best["teacher_f1"] >= best["student_f1"] else "student"
    assert res.served == expect == res.model.serve


def test_fine_tuning_leaves_the_base_untouched(records):
    cfg = TrainConfig(max_epochs=1, min_steps=0, dev_fraction=0.0)
    base = train_lasl(records[:10], config=cfg).model
    before = {k: v.clone() for k, v in base.student.state_dict().items()}
    tuned = train_lasl(records[10:20], config=cfg, base=base).model
    assert all(torch.equal(before[k], v) for k, v in base.student.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in tuned.student.state_dict().items())


def test_lpn_gradients_stop_at_the_tagger_unless_asked(records):
    """docs/method.md, R5: by default the ranking loss trains the LPN only; lpn_backprop=True lets it reach the encoder."""
    from lasl_backend.ner.batching import collate, make_chunks
    from lasl_backend.ner.lossnet import ranking_loss
    from lasl_backend.ner.model import NerModel

    m = NerModel.create(["药物", "疾病和诊断", "解剖部位", "手术", "实验室检验", "影像检查"], texts=[r.text for r in records], lossnet_kind="lpn")
    ch = make_chunks([r.text for r in records[:4]], m.encode, 200, [r.entities for r in records[:4]], m.scheme)
    ids, mask, tags = collate(ch)
    for backprop, expect_grad in ((False, False), (True, True)):
        m.student.zero_grad()
        em, layers = m.student(ids, mask)
        b = m.student.bounds(em, mask, with_marginals=False)
        feats = layers[-1] if backprop else layers[-1].detach()
        pred = m.lossnet(feats, mask, torch.stack([b.l_min, b.l_max], 1).float())
        ranking_loss(pred, m.student.nll(em, tags, mask).detach()).backward()
        g = m.student.encoder.lstm.fwd.weight_ih_l0.grad
        assert (g is not None and bool(g.abs().sum() > 0)) == expect_grad


def test_errors_and_cancel(records):
    with pytest.raises(TrainingError, match="no labeled"):
        train_lasl([], config=TrainConfig())
    with pytest.raises(TrainingError, match="outside the label set"):
        train_lasl(records[:5], labels=["药物"], config=TrainConfig(max_epochs=1, min_steps=0, dev_fraction=0.0))
    with pytest.raises(TrainingCancelled):
        train_lasl(records[:5], config=TrainConfig(max_epochs=1, min_steps=0, dev_fraction=0.0), should_stop=lambda: True)


def test_time_budget_ends_the_run_early(records):
    cfg = TrainConfig(max_epochs=50, min_steps=0, dev_fraction=0.0, max_seconds=0.5)
    res = train_lasl(records[:30], config=cfg)
    assert 0 < res.steps < 50 * 3  # 30 records are ~3 batches per epoch: far fewer steps were run
    assert res.out_of_time  # the backend schedules a follow-up run on this flag


def test_a_run_that_ends_on_its_epochs_is_not_out_of_time(records):
    res = train_lasl(records[:10], config=TrainConfig(max_epochs=1, min_steps=0, dev_fraction=0.0, max_seconds=600))
    assert res.steps > 0 and not res.out_of_time


def test_dev_f1_ties_keep_the_later_period(records):
    """Records without entities give dev F1 0.0 every period: the kept model must be the last one,
    not the barely trained first one."""
    from lasl_backend.data import Record

    blank = [Record(r.id, r.text, []) for r in records[:30]]
    cfg = TrainConfig(max_epochs=4, min_steps=0, dev_fraction=0.34, min_dev_records=5, min_dev_entities=0, patience=10, seed=0)
    res = train_lasl(blank, labels=["药物"], config=cfg)
    assert [h["dev_f1"] for h in res.history] == [0.0] * 4
    last_state = res.model.student.state_dict()
    # retraining for 1 period gives a different (less trained) model than the one kept
    one = train_lasl(blank, labels=["药物"], config=TrainConfig(max_epochs=1, min_steps=0, dev_fraction=0.34, min_dev_records=5, min_dev_entities=0, seed=0))
    assert any(not torch.equal(last_state[k], v) for k, v in one.model.student.state_dict().items())


def test_tagger_warmup_trains_the_tagger_alone_first(records):
    """Within tagger_warmup_seconds the loss net gets no step and no consistency loss is computed; the
    tagger learns and the EMA teacher still follows it."""
    base = dict(max_epochs=1, min_steps=0, dev_fraction=0.0, seed=2, lossnet="lpn", mean_teacher=True)
    ref = train_lasl(records[:20], [r.text for r in records[20:30]], config=TrainConfig(**base))
    assert "rank_loss" in ref.history[0] and "consistency" in ref.history[0]
    init = train_lasl(records[:20], [r.text for r in records[20:30]], config=TrainConfig(**base, max_steps=1))
    warm = train_lasl(records[:20], [r.text for r in records[20:30]], base=init.model,
                      config=TrainConfig(**base, tagger_warmup_seconds=600.0))
    assert "rank_loss" not in warm.history[0] and "consistency" not in warm.history[0]
    before, after = init.model.lossnet.state_dict(), warm.model.lossnet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the loss net did not move
    moved = [k for k, v in init.model.student.state_dict().items() if not torch.equal(v, warm.model.student.state_dict()[k])]
    assert moved  # the tagger did
    t_before, t_after = init.model.teacher.state_dict(), warm.model.teacher.state_dict()
    assert any(not torch.equal(t_before[k], t_after[k]) for k in t_before)  # the EMA followed


def test_turning_mean_teacher_off_drops_the_teacher_of_the_base_model(records):
    """A project that switches Mean Teacher off serves its student and stops carrying (and growing) a stale
    EMA copy in every checkpoint; switched back on, a fresh teacher starts from the student."""
    base = dict(max_epochs=1, min_steps=0, dev_fraction=0.0, seed=1, lossnet="lpn")
    with_teacher = train_lasl(records[:20], [r.text for r in records[20:30]], config=TrainConfig(**base, mean_teacher=True))
    with_teacher.model.serve = "teacher"
    off = train_lasl(records[:20], base=with_teacher.model, config=TrainConfig(**base, mean_teacher=False))
    assert off.model.teacher is None and off.model.serve == "student" and off.served == "student"
    assert with_teacher.model.teacher is not None  # the base version itself is left as it was
    assert "consistency" not in off.history[0]
    on = train_lasl(records[:20], [r.text for r in records[20:30]], base=off.model, config=TrainConfig(**base, mean_teacher=True))
    assert on.model.teacher is not None and "consistency" in on.history[0]


def _student_after_every_step(monkeypatch) -> list[dict[str, torch.Tensor]]:
    """A record of the student's weights after each optimizer step of the next run."""
    from lasl_backend.ner import training

    seen: list[dict[str, torch.Tensor]] = []
    real = training._Stepper.step

    def spy(self, losses):
        real(self, losses)
        seen.append({k: v.detach().clone() for k, v in self.student.named_parameters()})

    monkeypatch.setattr(training._Stepper, "step", spy)
    return seen


def test_the_served_weights_are_the_mean_of_the_run_s_last_steps(records, monkeypatch):
    seen = _student_after_every_step(monkeypatch)
    cfg = TrainConfig(max_epochs=1, min_steps=12, dev_fraction=0.0, seed=2, average_tail=0.25, char_vectors="none")
    res = train_lasl(records[:20], config=cfg)
    assert len(seen) == 12 and res.model.meta["averaged_steps"] == 3
    served = dict(res.model.student.named_parameters())
    for name, p in served.items():
        mean = torch.stack([s[name] for s in seen[-3:]]).mean(0)
        torch.testing.assert_close(p.detach(), mean, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(p.detach(), seen[-1][name]) for name, p in served.items())  # not the last step's


def test_without_averaging_the_last_step_serves(records, monkeypatch):
    seen = _student_after_every_step(monkeypatch)
    res = train_lasl(records[:20], config=TrainConfig(max_epochs=1, min_steps=12, dev_fraction=0.0, seed=2, char_vectors="none"))
    assert res.model.meta["averaged_steps"] == 0
    for name, p in res.model.student.named_parameters():
        assert torch.equal(p.detach(), seen[-1][name])


def test_with_a_dev_set_the_average_serves_only_where_it_scores_at_least_the_kept_period(records, monkeypatch):
    from lasl_backend.ner import training

    scores = iter([0.5, 0.4])  # the one period's student, then the average: the average loses
    monkeypatch.setattr(training, "evaluate_model", lambda *a, **k: {"micro": {"f1": next(scores)}})
    cfg = TrainConfig(max_epochs=1, min_steps=8, seed=2, average_tail=0.5, char_vectors="none")
    res = train_lasl(records[:20], config=cfg, dev=records[20:30])
    assert res.model.meta["averaged_steps"] == 0 and res.dev_f1 == 0.5 and res.history[-1]["average_f1"] == 0.4
    scores = iter([0.5, 0.6])  # now it wins and its F1 is the run's
    res = train_lasl(records[:20], config=cfg, dev=records[20:30])
    assert res.model.meta["averaged_steps"] == 4 and res.dev_f1 == 0.6


def test_a_tail_share_outside_0_to_1_is_refused(records):
    for name in ("average_tail", "anneal_tail"):
        for bad in (-0.1, 1.0):
            with pytest.raises(TrainingError, match=name):
                train_lasl(records[:5], config=TrainConfig(max_epochs=1, min_steps=1, char_vectors="none", **{name: bad}))


def _learning_rate_of_every_step(monkeypatch) -> list[float]:
    from lasl_backend.ner import training

    rates: list[float] = []
    real = training._Stepper._optimizer_steps

    def spy(self, loss, warm):
        rates.append(self.opt.param_groups[0]["lr"])
        real(self, loss, warm)

    monkeypatch.setattr(training._Stepper, "_optimizer_steps", spy)
    return rates


def test_the_annealed_tail_lowers_the_learning_rate_linearly_to_near_zero(records, monkeypatch):
    rates = _learning_rate_of_every_step(monkeypatch)
    cfg = TrainConfig(max_epochs=1, min_steps=12, dev_fraction=0.0, seed=2, anneal_tail=0.25, char_vectors="none")
    train_lasl(records[:20], config=cfg)
    lr = cfg.lr
    assert rates[:10] == [lr] * 10  # constant until the last 3 steps
    assert rates[9:] == pytest.approx([lr, lr * 2 / 3, lr / 3])


def test_without_annealing_the_learning_rate_stays_constant(records, monkeypatch):
    rates = _learning_rate_of_every_step(monkeypatch)
    cfg = TrainConfig(max_epochs=1, min_steps=12, dev_fraction=0.0, seed=2, char_vectors="none")
    train_lasl(records[:20], config=cfg)
    assert rates == [cfg.lr] * 12


def test_a_run_cut_by_its_time_budget_anneals_over_its_last_seconds(records, monkeypatch):
    from lasl_backend.ner import training

    rates = _learning_rate_of_every_step(monkeypatch)
    clock = iter(range(10**6))  # every clock read is one second later
    monkeypatch.setattr(training.time, "perf_counter", lambda: float(next(clock)))
    cfg = TrainConfig(max_epochs=1, min_steps=10**4, dev_fraction=0.0, seed=2, anneal_tail=0.5, max_seconds=40, char_vectors="none")
    res = train_lasl(records[:20], config=cfg)
    assert res.out_of_time and len(rates) == res.steps < 10**4
    assert rates[0] == cfg.lr and rates[-1] < 0.5 * cfg.lr
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:]))


def test_a_run_cut_by_its_time_budget_still_averages_its_last_seconds(records, monkeypatch):
    from lasl_backend.ner import training

    clock = iter(range(10**6))  # every clock read is one second later
    monkeypatch.setattr(training.time, "perf_counter", lambda: float(next(clock)))
    cfg = TrainConfig(max_epochs=1, min_steps=10**4, dev_fraction=0.0, seed=2, average_tail=0.5, max_seconds=40, char_vectors="none")
    res = train_lasl(records[:20], config=cfg)
    assert res.out_of_time and res.steps < 10**4
    assert 0 < res.model.meta["averaged_steps"] < res.steps


def test_the_full_schedule_keeps_the_model_options_and_resets_the_schedule():
    """A final run's config: the defaults' epochs, steps, patience and dev split, no Mean Teacher, no tail
    averaging or annealing, no warm-up, only the given budget; the model and knowledge options stay."""
    short = TrainConfig(max_epochs=2, min_steps=5, max_steps=9, patience=1, dev_fraction=0.0, mean_teacher=True, average_tail=0.2,
                        anneal_tail=0.3, max_seconds=30.0, tagger_warmup_seconds=10.0, lossnet="lpn", lpn_layers=2, seed=7,
                        char_vectors="none", bigrams=True)
    full, d = short.full_schedule(max_seconds=600.0), TrainConfig()
    assert (full.max_epochs, full.min_steps, full.max_steps, full.patience, full.dev_fraction) == (d.max_epochs, d.min_steps, None, d.patience, d.dev_fraction)
    assert not full.mean_teacher and full.average_tail == full.anneal_tail == full.tagger_warmup_seconds == 0.0 and full.max_seconds == 600.0
    assert (full.lossnet, full.lpn_layers, full.seed, full.char_vectors, full.bigrams) == ("lpn", 2, 7, "none", True)
    assert short.full_schedule().max_seconds is None and short.max_epochs == 2  # a copy; the original is unchanged
