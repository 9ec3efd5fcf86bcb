"""MultiTaskOptimWrapper: which gradients reach which parameters, resume, and CPU DDP."""
import os

import pytest
import torch
from mmengine.logging import MessageHub

from mmmt.engine import IMTLG, MGDAUB, PCGrad
from mmmt.engine.optimizers.balancers import min_norm_weights
from mmmt.registry import OPTIM_WRAPPERS
from tests.gloo import init_gloo, spawn_ranks
from ._tiny_model import TinyTwoTask, batch


def wrapper_for(model, balancer, lr=0.1, **kwargs):
    return OPTIM_WRAPPERS.build(
        dict(type='MultiTaskOptimWrapper', balancer=balancer, **kwargs),
        default_args=dict(optimizer=torch.optim.SGD(model.parameters(), lr=lr)))


def reference_grads(model, data):
    """Per-task gradients of the backbone, and the summed gradient of the heads."""
    losses = model(**data)
    shared = list(model.backbone.parameters())
    per_task = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(
        losses[k], shared, retain_graph=True)]) for k in ('loss_a', 'loss_b')]
    heads = list(model.head_a.parameters()) + list(model.head_b.parameters())
    head_grads = torch.autograd.grad(losses['loss_a'] + losses['loss_b'], heads)
    return torch.stack(per_task), head_grads


def shared_grad(model):
    return torch.cat([p.grad.reshape(-1) for p in model.backbone.parameters()])


def test_shared_gradient_is_balanced_and_heads_get_their_usual_gradient():
    model, data = TinyTwoTask(), batch(0)
    task_grads, head_grads = reference_grads(model, data)
    assert float(task_grads[0] @ task_grads[1]) < 0  # the tasks conflict on the backbone
    wrapper = wrapper_for(model, dict(type='PCGrad'))
    weights = wrapper.backward_balanced(model, model(**data))
    expected = PCGrad().weights((task_grads @ task_grads.T).double(), torch.ones(2)) \
        .float() @ task_grads
    assert torch.allclose(shared_grad(model), expected, atol=1e-6)
    assert not torch.allclose(shared_grad(model), task_grads.sum(0), atol=1e-4)
    heads = list(model.head_a.parameters()) + list(model.head_b.parameters())
    for p, g in zip(heads, head_grads):
        assert torch.allclose(p.grad, g, atol=1e-6)
    hub = MessageHub.get_current_instance()
    assert hub.get_scalar('train/weight_a').current() == pytest.approx(float(weights[0]))
    assert hub.get_scalar('train/weight_b').current() == pytest.approx(float(weights[1]))


def test_train_step_updates_the_parameters_with_the_balanced_gradient():
    model, data = TinyTwoTask(), batch(1)
    task_grads, _ = reference_grads(model, data)
    before = torch.cat([p.detach().reshape(-1).clone() for p in model.backbone.parameters()])
    wrapper = wrapper_for(model, dict(type='MGDAUB', upper_bound=False), lr=0.5)
    model.train_step(data, wrapper)  # mmengine's BaseModel.train_step, unchanged
    after = torch.cat([p.detach().reshape(-1) for p in model.backbone.parameters()])
    w = min_norm_weights((task_grads @ task_grads.T).double()).float()
    assert torch.allclose(after, before - 0.5 * (w @ task_grads), atol=1e-6)
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())  # zeroed


def test_cagrad_without_conflict_aversion_is_plain_training():
    """CAGrad with c = 0 is gradient descent on the loss that is trained (the sum)."""
    model, data = TinyTwoTask(), batch(5)
    losses = model(**data)
    expected = torch.autograd.grad(losses['loss_a'] + losses['loss_b'], list(model.parameters()))
    wrapper = wrapper_for(model, dict(type='CAGrad', c=0.0))
    wrapper.backward_balanced(model, model(**data))
    for p, g in zip(model.parameters(), expected):
        assert torch.allclose(p.grad, g, atol=1e-6)


@pytest.mark.parametrize('balancer', [MGDAUB(), IMTLG(representation=True)])
def test_balancers_on_the_representation_use_its_gradient(balancer):
    model, data = TinyTwoTask(), batch(2)
    losses = model(**data)
    z = model.backbone(data['inputs'])
    # the same losses as a function of the representation z
    la = ((model.head_a(z) - data['data_samples'][:, :1])**2).mean()
    lb = ((model.head_b(z) - data['data_samples'][:, 1:])**2).mean()
    rep = torch.stack([torch.autograd.grad(loss, z, retain_graph=True)[0].reshape(-1)
                       for loss in (la, lb)])
    w = balancer.weights((rep @ rep.T).double(), torch.ones(2, dtype=torch.float64)).float()
    shared = list(model.backbone.parameters())
    expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(w[0] * la + w[1] * lb,
                                                                     shared)])
    wrapper = wrapper_for(model, balancer)
    with wrapper.optim_context(model):
        losses = model(**data)
    wrapper.backward_balanced(model, losses, wrapper._features)
    assert torch.allclose(shared_grad(model), expected, atol=1e-6)


def test_update_params_without_a_recorded_forward_is_a_clear_error():
    model = TinyTwoTask()
    wrapper = wrapper_for(model, dict(type='PCGrad'))
    with pytest.raises(RuntimeError, match='optim_context'):
        wrapper.update_params(torch.zeros(()))
    with pytest.raises(ValueError, match='shared_modules'):
        wrapper_for(model, dict(type='PCGrad'), shared_modules=('encoder', )) \
            .backward_balanced(model, model(**batch(0)))


def test_a_balancer_of_the_wrong_kind_is_a_one_line_input_error():
    # an InvalidOptionError (still a TypeError): the tools report it in one line
    from mmmt.utils.errors import InvalidOptionError
    with pytest.raises(InvalidOptionError) as info:
        wrapper_for(TinyTwoTask(), 'PCGrad')
    assert str(info.value) == ('MultiTaskOptimWrapper: balancer must be a BALANCERS config or a '
                               'BaseBalancer, got str')


def test_shared_modules_given_must_exist_and_may_be_dotted():
    model = TinyTwoTask()
    # the default's neck may be absent (this model has none)
    assert wrapper_for(model, dict(type='PCGrad'))._split_params(model)[0] == \
        list(model.backbone.parameters())
    # a misspelt name next to a real one would leave the neck's parameters unbalanced (one
    # line from the tools: a UserInputError)
    from mmmt.utils.errors import UserInputError
    with pytest.raises(UserInputError, match=r"shared_modules \['nek'\] are not modules of "
                       r"TinyTwoTask \(its modules: \['data_preprocessor', 'backbone', "
                       r"'head_a', 'head_b'\]"):
        wrapper_for(model, dict(type='PCGrad'), shared_modules=('backbone', 'nek')) \
            ._split_params(model)
    shared, specific = wrapper_for(model, dict(type='PCGrad'),
                                   shared_modules=('backbone.0', ))._split_params(model)
    assert shared == list(model.backbone[0].parameters())
    assert len(specific) == 4  # the two heads' weights and biases


@pytest.mark.parametrize('balancer', ['PCGrad', 'IMTLG', 'GradNorm', 'NashMTL', 'CAGrad'])
def test_gradient_accumulation_balances_the_windows_mean_gradients(balancer):
    """2 micro-batches of 4 images with accumulative_counts=2 update as one batch of 8 (each
    micro-batch balanced on its own gave shared gradients 28 % (PCGrad, IMTL-G) to 280 %
    (GradNorm) away from it), and the balancer's state advances once per update."""
    full = batch(20, size=8)
    one = TinyTwoTask()
    one_wrapper = wrapper_for(one, dict(type=balancer))
    one.train_step(full, one_wrapper)
    acc = TinyTwoTask()
    acc_wrapper = wrapper_for(acc, dict(type=balancer), accumulative_counts=2)
    acc_wrapper.initialize_count_status(acc, 0, 2)
    halves = [{k: v[4 * h:4 * h + 4] for k, v in full.items()} for h in range(2)]
    assert acc_wrapper.backward_balanced(acc, acc(**halves[0])) is None  # nothing balanced yet
    assert all(p.grad is None for p in acc.backbone.parameters())
    acc.train_step(halves[1], acc_wrapper)  # the window's last micro-batch: balance and step
    for a, b in zip(one.parameters(), acc.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    for key, value in one_wrapper.balancer.state_dict().items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            assert torch.allclose(value, acc_wrapper.balancer.state_dict()[key], rtol=1e-4)
    if balancer == 'NashMTL':
        assert acc_wrapper.balancer.state_dict()['step'] == 1


def test_gradient_accumulation_of_a_representation_balancer_averages_the_balanced_grads():
    """MGDA-UB back-propagates its weights through each micro-batch's graph: each one is
    balanced on its own and the window averages them."""
    model, data0 = TinyTwoTask(), batch(3)
    reference = TinyTwoTask()
    ref_wrapper = wrapper_for(reference, MGDAUB())
    with ref_wrapper.optim_context(reference):
        losses = reference(**data0)
    ref_wrapper.backward_balanced(reference, losses, ref_wrapper._features)
    wrapper = wrapper_for(model, MGDAUB(), accumulative_counts=2)
    wrapper.initialize_count_status(model, 0, 2)
    with wrapper.optim_context(model):
        losses = model(**data0)
    assert wrapper.backward_balanced(model, losses, wrapper._features) is not None
    assert torch.allclose(shared_grad(model), 0.5 * shared_grad(reference), atol=1e-7)
    assert not wrapper.should_update()


def test_resume_of_the_wrapper_state_is_exact():
    def run(steps, start=None):
        model = TinyTwoTask()
        wrapper = wrapper_for(model, dict(type='GradNorm'))
        if start is not None:
            model.load_state_dict(start[0])
            wrapper.load_state_dict(start[1])
        for i in steps:
            model.train_step(batch(10 + i), wrapper)
        return model, wrapper

    straight, _ = run(range(4))
    model, wrapper = run(range(2))
    state = (model.state_dict(), wrapper.state_dict())
    assert isinstance(state[1]['balancer']['task_weights'], torch.Tensor)
    resumed, resumed_wrapper = run(range(2, 4), start=state)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(resumed_wrapper.balancer.state_dict()['task_weights'],
                           torch.ones(2, dtype=torch.float64))


# --- CPU DDP: 2 gloo processes -------------------------------------------------------------------
#: every balancer: on the shared parameters' gradients, MGDA-UB on the representation's; a
#: normalisation by the gradients' norms needs the representation's global Gram matrix itself,
#: not a multiple of it
BALANCERS_IN_DDP = tuple(
    dict(type=name) for name in ('PCGrad', 'CAGrad', 'GradNorm', 'IMTLG', 'MGDAUB', 'NashMTL',
                                 'AlignedMTL')) + (dict(type='MGDAUB', normalization='l2'), )


def _ddp_worker(rank, port, out_dir):
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel

    from mmmt.utils import register_all_modules
    register_all_modules()
    init_gloo(rank, port)
    for i, balancer in enumerate(BALANCERS_IN_DDP):
        model = TinyTwoTask()
        ddp = MMDistributedDataParallel(module=model)
        wrapper = wrapper_for(model, balancer)
        for step in range(2):
            full = batch(20 + step, size=8)  # each rank trains on its half of the global batch
            ddp.train_step({k: v[4 * rank:4 * rank + 4] for k, v in full.items()}, wrapper)
        torch.save([p.detach() for p in model.parameters()],
                   os.path.join(out_dir, f'{i}_{rank}.pth'))
    dist.destroy_process_group()


def test_ddp_averages_task_gradients_before_balancing(tmp_path):
    spawn_ranks(_ddp_worker, str(tmp_path))
    for i, balancer in enumerate(BALANCERS_IN_DDP):
        ranks = [torch.load(tmp_path / f'{i}_{r}.pth') for r in range(2)]
        # one process on the whole global batch: what averaging before balancing reproduces
        model = TinyTwoTask()
        wrapper = wrapper_for(model, balancer)
        for step in range(2):
            model.train_step(batch(20 + step, size=8), wrapper)
        for a, b, ref in zip(ranks[0], ranks[1], model.parameters()):
            assert torch.equal(a, b)  # the ranks stay in sync
            assert torch.allclose(a, ref.detach(), atol=1e-6), balancer


def test_per_rank_balancing_would_differ():
    """Guards the test above: balancing each half and averaging gives another update."""
    halves = []
    for r in range(2):
        model, data = TinyTwoTask(), batch(20, size=8)
        g, _ = reference_grads(model, {k: v[4 * r:4 * r + 4] for k, v in data.items()})
        halves.append(g)
    per_rank = sum(PCGrad().weights((g @ g.T).double(), torch.ones(2)).float() @ g
                   for g in halves) / 2
    mean = sum(halves) / 2
    global_ = PCGrad().weights((mean @ mean.T).double(), torch.ones(2)).float() @ mean
    assert not torch.allclose(per_rank, global_, atol=1e-4)


@pytest.mark.parametrize('saved, resumed', [('PCGrad', 'CAGrad'), ('PCGrad', 'GradNorm')])
def test_resuming_with_another_balancer_is_one_line(saved, resumed):
    # a bare KeyError of a state key ('task_weights', "CAGrad has no state") from inside
    # mmengine's resume
    from mmmt.utils.errors import UserInputError
    model = TinyTwoTask()
    state = wrapper_for(model, dict(type=saved)).state_dict()
    with pytest.raises(UserInputError, match=rf"^the checkpoint holds balancer state "
                       rf"\['generator'\], which {resumed} cannot take .*saved with another "
                       r'optim_wrapper\.balancer\. Resume with that balancer, or start a new '
                       r'training from its weights \(load_from=CHECKPOINT, without --resume\)$'):
        wrapper_for(TinyTwoTask(), dict(type=resumed)).load_state_dict(state)


@pytest.mark.parametrize('balancer', [dict(type='MGDAUB', upper_bound=False),
                                      dict(type='IMTLG'), dict(type='AlignedMTL')])
def test_a_non_finite_loss_reaches_the_non_finite_loss_hook(balancer):
    """The balancers' solvers failed on a NaN Gram matrix inside torch (lstsq's INTERNAL
    ASSERT, eigh not converging) before NonFiniteLossHook could name the batch: the step
    now completes with the plain sum, and the loss it logs is what the hook stops at."""
    model, data = TinyTwoTask(), batch(3)
    data['inputs'][0, 0] = float('nan')
    wrapper = wrapper_for(model, balancer)
    log_vars = model.train_step(data, wrapper)
    assert not torch.isfinite(log_vars['loss'])
    weights = MessageHub.get_current_instance()
    assert weights.get_scalar('train/weight_a').current() == 1.0
