"""CPU thread defaults: passive OpenMP waiting and a thread count from the usable cores."""
import os

import pytest

from mmmt.utils.threads import configure_cpu_threads, default_num_threads


@pytest.fixture
def cores(monkeypatch):
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    return 6


def test_defaults_fill_only_what_is_unset(cores):
    env = {}
    assert configure_cpu_threads(env) == {'OMP_WAIT_POLICY': 'PASSIVE', 'OMP_NUM_THREADS': '6'}
    assert env == {'OMP_WAIT_POLICY': 'PASSIVE', 'OMP_NUM_THREADS': '6'}
    env = {'OMP_NUM_THREADS': '1', 'OMP_WAIT_POLICY': 'ACTIVE'}  # the user's choice wins
    assert configure_cpu_threads(env) == {}
    assert env == {'OMP_NUM_THREADS': '1', 'OMP_WAIT_POLICY': 'ACTIVE'}


def test_launcher_processes_share_the_cores(cores):
    assert default_num_threads({'LOCAL_WORLD_SIZE': '2'}) == 3
    assert default_num_threads({'LOCAL_WORLD_SIZE': '8'}) == 1  # never 0
    assert default_num_threads({'LOCAL_WORLD_SIZE': 'x'}) == 6
    env = {'LOCAL_WORLD_SIZE': '3'}
    configure_cpu_threads(env)
    assert env['OMP_NUM_THREADS'] == '2'


def test_the_affinity_mask_not_the_machine(monkeypatch):
    # e.g. `taskset -c 0 python tools/train.py ...` or a container limited to one core
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {3}, raising=False)
    monkeypatch.setattr(os, 'cpu_count', lambda: 64)
    assert default_num_threads({}) == 1
