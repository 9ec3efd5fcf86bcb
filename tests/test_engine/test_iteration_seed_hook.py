"""IterationSeedHook: drop-path masks after ``--resume`` are those of the uninterrupted run."""
import os.path as osp
from types import SimpleNamespace

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmmt.engine.hooks import IterationSeedHook, iteration_seed
from ..test_tools.conftest import NO_VAL, write_tiny_config


def test_draws_depend_on_seed_and_iteration_only():
    hook = IterationSeedHook()
    draws = {}
    for seed, it in ((0, 5), (0, 6), (1, 5), (0, 5)):
        torch.rand(7)  # whatever ran before
        hook.before_train_iter(SimpleNamespace(seed=seed, iter=it), 0)
        draws.setdefault((seed, it), []).append(torch.rand(4))
    assert torch.equal(*draws[(0, 5)])
    assert not torch.equal(draws[(0, 5)][0], draws[(0, 6)][0])
    assert not torch.equal(draws[(0, 5)][0], draws[(1, 5)][0])


def test_neighbouring_seeds_and_iterations_get_distinct_seeds():
    # the pair is mixed, not added: (seed 0, iteration 3) is not (seed 1, iteration 2)
    seeds = {iteration_seed(seed, it) for seed in range(4) for it in range(4)}
    assert len(seeds) == 16
    assert all(0 <= s < 2**63 for s in seeds)  # what torch.manual_seed takes
    assert iteration_seed(2**63 + 1, 3) == iteration_seed(1, 3)


def _train(cfg_file, work_dir, name, resume_from=None):
    cfg = Config.fromfile(cfg_file)
    cfg.work_dir = work_dir
    cfg.experiment_name = name
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.log_level = 'WARNING'
    if resume_from:
        cfg.resume, cfg.load_from = True, resume_from
    runner = Runner.from_cfg(cfg)
    runner.train()
    return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


def test_resume_with_drop_path_ends_with_the_uninterrupted_weights(tmp_path, synthetic_nyud):
    """The shipped Swin-L recipes train with drop path (0.1 / 0.2): a run resumed from its
    iteration-2 checkpoint must draw the same masks in iterations 3 and 4 as the straight run
    (without the hook the weights differed by up to 5e-4 after 4 iterations)."""
    cfg = write_tiny_config(
        tmp_path / 'cfg.py', synthetic_nyud, max_iters=4, val_interval=2,
        extra=NO_VAL + 'default_hooks.update(checkpoint=dict(interval=2, max_keep_ckpts=-1))\n'
        'model = dict(backbone=dict(drop_path_rate=0.3), decode_head=dict(drop_path_rate=0.3))\n')
    straight = _train(cfg, str(tmp_path / 'a'), 'seed_hook_a')
    resumed = _train(cfg, str(tmp_path / 'b'), 'seed_hook_b',
                     resume_from=osp.join(tmp_path, 'a', 'iter_2.pth'))
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_a_seed_of_the_hook_replaces_the_runners():
    def draw(hook, runner_seed):
        hook.before_train_iter(SimpleNamespace(seed=runner_seed, iter=5), 0)
        return torch.rand(4)

    assert torch.equal(draw(IterationSeedHook(seed=3), 0), draw(IterationSeedHook(seed=3), 1))
    assert torch.equal(draw(IterationSeedHook(seed=3), 0), draw(IterationSeedHook(), 3))
    assert not torch.equal(draw(IterationSeedHook(seed=3), 0), draw(IterationSeedHook(), 0))
