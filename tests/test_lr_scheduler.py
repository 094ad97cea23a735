"""lazytorch.optim.lr_scheduler against torch's: the same lr (and momentum) sequences over 40 steps,
closed forms, state dicts, and the step-order warning. No tensor is computed here."""
import warnings

import pytest

import lazytorch as lt

torch = pytest.importorskip("torch")

STEPS = 40


def _optimizers(name="SGD", **kwargs):
    """The same two-group optimizer in both libraries (group lrs 0.1 and 0.02)."""
    ours = getattr(lt.optim, name)([{"params": [lt.zeros(1, requires_grad=True)]},
                                    {"params": [lt.zeros(1, requires_grad=True)], "lr": 0.02}], lr=0.1, **kwargs)
    theirs = getattr(torch.optim, name)([{"params": [torch.zeros(1, requires_grad=True)]},
                                         {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.02}], lr=0.1,
                                        **kwargs)
    return ours, theirs


def _run(optimizer, scheduler, metrics=None, steps=STEPS):
    """lrs (and momenta/beta1) after each step, starting with the initial ones."""
    def snapshot():
        groups = optimizer.param_groups
        extra = [g["momentum"] if "momentum" in g else g["betas"][0] for g in groups]
        return list(scheduler.get_last_lr()), [g["lr"] for g in groups], extra

    out = [snapshot()]
    for i in range(steps):
        optimizer.step()
        if metrics is None:
            scheduler.step()
        else:
            scheduler.step(metrics[i])
        out.append(snapshot())
    return out


def _assert_same(ours, theirs):
    assert len(ours) == len(theirs)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        for x, y in zip(a, b):
            assert x == pytest.approx(y, rel=1e-12, abs=1e-15), f"step {k}: {a} != {b}"


SCHEDULERS = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[3, 10, 10, 25], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=12, eta_min=0.001),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lr_lambda=lambda e: 1 / (1 + e)),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, lr_lambda=[lambda e: 0.95 ** e, lambda e: e // 10 + 1]),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.25, total_iters=8),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=STEPS),
    "OneCycleLR-linear-3phase": lambda m, o: m.OneCycleLR(o, max_lr=0.8, epochs=4, steps_per_epoch=10,
                                                          anneal_strategy="linear", three_phase=True),
    "SequentialLR": lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=5),
                                                    m.CosineAnnealingLR(o, T_max=20)], milestones=[5]),
}


@pytest.mark.parametrize("kind", list(SCHEDULERS))
def test_lr_sequence_matches_torch(kind):
    ours_opt, theirs_opt = _optimizers(momentum=0.9)
    ours = _run(ours_opt, SCHEDULERS[kind](lt.optim.lr_scheduler, ours_opt))
    theirs = _run(theirs_opt, SCHEDULERS[kind](torch.optim.lr_scheduler, theirs_opt))
    _assert_same(ours, theirs)


def test_one_cycle_cycles_adam_beta1():
    ours_opt, theirs_opt = _optimizers("Adam")
    ours = _run(ours_opt, lt.optim.lr_scheduler.OneCycleLR(ours_opt, max_lr=0.01, total_steps=STEPS))
    theirs = _run(theirs_opt, torch.optim.lr_scheduler.OneCycleLR(theirs_opt, max_lr=0.01, total_steps=STEPS))
    _assert_same(ours, theirs)


def test_one_cycle_refuses_more_steps_than_total():
    opt, _ = _optimizers(momentum=0.9)
    scheduler = lt.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=3)
    for _ in range(3):
        opt.step()
        scheduler.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        scheduler.step()


@pytest.mark.parametrize("kwargs", [dict(patience=2, factor=0.5), dict(mode="max", patience=1, cooldown=2, min_lr=0.01),
                                    dict(threshold_mode="abs", threshold=0.1, patience=0, min_lr=[0.001, 0.0])])
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    metrics = [1.0, 0.9, 0.85, 0.85, 0.86, 0.84, 0.9, 0.9, 0.9, 0.5, 0.5, 0.6] * 4
    ours_opt, theirs_opt = _optimizers(momentum=0.9)
    ours = _run(ours_opt, lt.optim.lr_scheduler.ReduceLROnPlateau(ours_opt, **kwargs), metrics)
    theirs = _run(theirs_opt, torch.optim.lr_scheduler.ReduceLROnPlateau(theirs_opt, **kwargs), metrics)
    _assert_same(ours, theirs)


@pytest.mark.parametrize("kind", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR"])
def test_closed_form_with_epoch_argument(kind):
    results = []
    for lib in (lt, torch):
        opt, _ = _optimizers() if lib is lt else _optimizers()[::-1]
        scheduler = SCHEDULERS[kind](lib.optim.lr_scheduler, opt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lrs = []
            for epoch in (5, 11, 3, 30):
                opt.step()
                scheduler.step(epoch)
                lrs.append(scheduler.get_last_lr())
        results.append(lrs)
    _assert_same(*results)


@pytest.mark.parametrize("kind", ["StepLR", "MultiStepLR", "CosineAnnealingLR", "OneCycleLR", "SequentialLR"])
def test_state_dict_resumes_the_sequence(kind):
    opt, _ = _optimizers(momentum=0.9)
    scheduler = SCHEDULERS[kind](lt.optim.lr_scheduler, opt)
    full = _run(opt, scheduler)
    opt, _ = _optimizers(momentum=0.9)
    scheduler = SCHEDULERS[kind](lt.optim.lr_scheduler, opt)
    first = _run(opt, scheduler, steps=15)
    saved_opt, saved_sched = opt.state_dict(), scheduler.state_dict()
    assert "optimizer" not in saved_sched
    opt2, _ = _optimizers(momentum=0.9)
    scheduler2 = SCHEDULERS[kind](lt.optim.lr_scheduler, opt2)
    opt2.load_state_dict(saved_opt)
    scheduler2.load_state_dict(saved_sched)
    rest = _run(opt2, scheduler2, steps=STEPS - 15)
    _assert_same(first + rest[1:], full)


def test_reduce_lr_on_plateau_state_dict():
    opt, _ = _optimizers()
    scheduler = lt.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    scheduler.step(1.0)
    state = scheduler.state_dict()
    other = lt.optim.lr_scheduler.ReduceLROnPlateau(_optimizers()[0], mode="max")
    other.load_state_dict(state)
    assert other.best == 1.0 and other.mode == "min" and other.mode_worse == float("inf")


def test_warns_when_stepped_before_the_optimizer():
    opt, _ = _optimizers()
    scheduler = lt.optim.lr_scheduler.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        scheduler.step()
    opt, _ = _optimizers()
    scheduler = lt.optim.lr_scheduler.StepLR(opt, step_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        scheduler.step()


def test_errors():
    opt, _ = _optimizers()
    with pytest.raises(TypeError, match="is not an Optimizer"):
        lt.optim.lr_scheduler.StepLR(object(), step_size=1)
    with pytest.raises(KeyError, match="initial_lr"):
        lt.optim.lr_scheduler.StepLR(opt, step_size=1, last_epoch=3)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        lt.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="total_steps OR"):
        lt.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas"):
        lt.optim.lr_scheduler.LambdaLR(opt, [lambda e: 1.0])
