"""Each balancer on small problems whose answer can be derived by hand."""
import numpy as np
import pytest
import torch
from scipy.optimize import minimize as scipy_minimize

from mmmt.engine import IMTLG, MGDAUB, AlignedMTL, CAGrad, GradNorm, NashMTL, PCGrad
from mmmt.registry import BALANCERS

# two conflicting 2-D gradients (g1 . g2 = -1 < 0)
G = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
ONES = torch.ones(2, dtype=torch.float64)


def direction(balancer, grads=G, losses=ONES):
    return balancer.weights(grads @ grads.T, losses) @ grads


def _with_tiny_task(pair, tiny):
    """``pair`` with a task between them of gradient ``tiny`` x a direction of its own."""
    noise = torch.tensor([0.6, -0.8], dtype=torch.float64) if pair.shape[1] == 2 else \
        torch.randn(pair.shape[1], generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    return torch.stack([pair[0], tiny * noise, pair[1]])


def test_pcgrad_projects_each_gradient_on_the_others_normal_plane():
    # g1 - (g1.g2 / |g2|^2) g2 = (1, 0) + 1/2 (-1, 1);  g2 - (g2.g1 / |g1|^2) g1 = (0, 1)
    assert torch.allclose(direction(PCGrad()), torch.tensor([0.5 + 0.0, 0.5 + 1.0],
                                                            dtype=torch.float64))
    # no conflict: plain sum
    aligned = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(direction(PCGrad(), aligned), aligned.sum(0))


def test_mgda_gives_the_min_norm_point_of_the_segment():
    # gamma = (g2 - g1).g2 / |g1 - g2|^2 = 3/5: d = 3/5 g1 + 2/5 g2 = (0.2, 0.4), d _|_ g1 - g2
    d = direction(MGDAUB())
    assert torch.allclose(d, torch.tensor([0.2, 0.4], dtype=torch.float64))
    # three tasks by Frank-Wolfe: the min-norm point of a triangle around the origin is 0
    tri = torch.tensor([[1.0, 0.0], [-1.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    w = MGDAUB().weights(tri @ tri.T, torch.ones(3, dtype=torch.float64))
    assert abs(float(w.sum()) - 1) < 1e-9 and float((w @ tri).norm()) < 1e-2
    # a vertex is optimal when its gradient is the shortest and all others point along it
    col = torch.tensor([[0.5, 0.0], [2.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    w = MGDAUB().weights(col @ col.T, torch.ones(3, dtype=torch.float64))
    assert torch.allclose(w, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-4)


def test_mgda_three_tasks_by_hand():
    # g1 = (2, 0), g2 = (0, 1), g3 = (1, 1): the segment g1-g2's min-norm point w = (1/5, 4/5)
    # (d = (0.4, 0.8), |d|^2 = 0.8) is optimal for the triangle: g3 . d = 1.2 >= 0.8. The
    # Frank-Wolfe iteration from the centre stops with w_3 = 0.0025, w_2 = 0.798
    grads = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    w = MGDAUB().weights(grads @ grads.T, torch.ones(3, dtype=torch.float64))
    assert torch.allclose(w, torch.tensor([0.2, 0.8, 0.0], dtype=torch.float64), atol=1e-12)


def test_mgda_matches_a_generic_solver_of_the_min_norm_problem():
    from scipy.optimize import minimize
    rng = np.random.default_rng(0)
    for _ in range(40):
        num = int(rng.integers(3, 6))
        grads = rng.normal(size=(num, 6)) * rng.uniform(0.1, 10, size=(num, 1))
        gram = grads @ grads.T
        ref = minimize(lambda w: w @ gram @ w, np.full(num, 1 / num), jac=lambda w: 2 * gram @ w,
                       method='SLSQP', bounds=[(0, 1)] * num,
                       constraints=[dict(type='eq', fun=lambda w: w.sum() - 1)],
                       options=dict(ftol=1e-16, maxiter=1000)).x
        w = MGDAUB().weights(torch.from_numpy(gram), torch.ones(num, dtype=torch.float64))
        w = w.numpy()
        assert abs(w.sum() - 1) < 1e-12 and (w >= 0).all()
        # never worse than the generic solver, and the same point (the min-norm d is unique)
        assert w @ gram @ w <= ref @ gram @ ref * (1 + 1e-8)
        assert np.allclose(w @ grads, ref @ grads, atol=1e-5 * np.abs(grads).max())


def test_mgda_normalization_weights_the_unscaled_gradients_as_the_authors_code():
    # the weights are those of the min-norm point of the scaled gradients, used (as in Sener &
    # Koltun's code) on the unscaled ones: a convex combination of the real gradients
    grads = torch.tensor([[1e-3, 0.0], [-2e-3, 2e-3]], dtype=torch.float64)
    gram, losses = grads @ grads.T, torch.tensor([0.5, 2.0], dtype=torch.float64)
    unit = grads / grads.norm(dim=1, keepdim=True)
    w = MGDAUB(normalization='l2').weights(gram, losses)
    # unit vectors (1, 0) and (-1, 1)/sqrt(2): w_1 = (u2 - u1) . u2 / |u1 - u2|^2
    w1 = float((unit[1] - unit[0]) @ unit[1] / (unit[0] - unit[1]).norm()**2)
    assert torch.allclose(w, torch.tensor([w1, 1 - w1], dtype=torch.float64))
    assert torch.allclose(w, MGDAUB().weights(unit @ unit.T, losses))
    for norm in ('loss', 'loss+'):
        w = MGDAUB(normalization=norm).weights(gram, losses)
        assert abs(float(w.sum()) - 1) < 1e-12 and (w >= 0).all()
        assert float((w @ grads).norm()) <= float(grads.norm(dim=1).max())
    # 'loss': g / L, so (1e-3, 0) / 0.5 and (-1e-3, 1e-3): w_1 from the scaled pair
    scaled = grads / losses[:, None]
    w = MGDAUB(normalization='loss').weights(gram, losses)
    assert torch.allclose(w, MGDAUB().weights(scaled @ scaled.T, losses))
    with pytest.raises(ValueError, match='normalization'):
        MGDAUB(normalization='bad')
    with pytest.raises(ValueError, match='normalization'):
        MGDAUB(normalization='bad')


def test_cagrad_closed_form_for_symmetric_gradients():
    # g1 = (a, b), g2 = (-a, b): w* = (1/2, 1/2), g_w = g0 = (0, b), d = (1 + c) g0 for the
    # average loss; mmmt trains the sum (T = 2 times the average): d = 2 (1 + c) g0
    a, b, c = 2.0, 0.5, 0.4
    sym = torch.tensor([[a, b], [-a, b]], dtype=torch.float64)
    assert torch.allclose(direction(CAGrad(c=c), sym),
                          torch.tensor([0.0, 2 * (1 + c) * b], dtype=torch.float64), atol=1e-6)
    # rescale divides by 1 + c^2 (the authors' option)
    assert torch.allclose(direction(CAGrad(c=c, rescale=True), sym),
                          torch.tensor([0.0, 2 * (1 + c) * b / (1 + c**2)],
                                       dtype=torch.float64), atol=1e-6)


def test_cagrad_matches_a_dense_search_of_its_dual():
    c = 0.4
    g1, g2 = G[0].numpy(), G[1].numpy()
    g0 = (g1 + g2) / 2
    radius = c * np.linalg.norm(g0)
    ws = np.linspace(0, 1, 200001)
    gw = ws[:, None] * g1 + (1 - ws[:, None]) * g2
    best = gw[np.argmin(gw @ g0 + radius * np.linalg.norm(gw, axis=1))]
    expected = 2 * (g0 + radius / np.linalg.norm(best) * best)  # of the sum: T = 2 x average
    assert np.allclose(direction(CAGrad(c=c)).numpy(), expected, atol=1e-4)


def test_cagrad_with_c_zero_is_plain_training_of_the_summed_loss():
    # the paper: c = 0 is gradient descent. The task-specific parameters get the gradient of the
    # sum of the losses, so the shared ones must too (w = 1), not the average's (w = 1 / T)
    grads = torch.tensor([[3.0, 1.0, 0.0], [-1.0, 2.0, 1.0], [0.5, -1.0, 2.0]],
                         dtype=torch.float64)
    w = CAGrad(c=0.0).weights(grads @ grads.T, torch.ones(3, dtype=torch.float64))
    assert torch.allclose(w, torch.ones(3, dtype=torch.float64))


def test_imtlg_has_equal_projections_on_every_task_direction():
    for grads in (G, torch.tensor([[3.0, 1.0, 0.0], [-1.0, 2.0, 1.0], [0.5, -1.0, 2.0]],
                                  dtype=torch.float64)):
        w = IMTLG().weights(grads @ grads.T, torch.ones(len(grads), dtype=torch.float64))
        d = w @ grads
        proj = grads @ d / grads.norm(dim=1)
        assert torch.allclose(proj, proj[0].expand_as(proj)), proj
        assert abs(float(w.sum()) - 1) < 1e-9
    # the 2-D pair by hand: d.u1 = d.u2 gives w1 = sqrt(2) w2, and w1 + w2 = 1
    w = IMTLG().weights(G @ G.T, ONES)
    assert torch.allclose(w, torch.tensor([2 - 2**0.5, 2**0.5 - 1], dtype=torch.float64))


@pytest.mark.parametrize('tiny', [0.0, 1e-9])
def test_imtlg_leaves_out_a_task_with_a_zero_gradient(tiny):
    # a task without valid pixels has g = 0 and no direction: the others are balanced as if
    # it were absent (the pair by hand above), not d = 0 (u = 0 would force every projection to 0).
    # Zero within float32 (1e-9 of the others, a noise direction) too: an equal projection on the
    # noise gave it weight 1 and the others 1e-9, d of the noise's size
    grads = _with_tiny_task(G, tiny)
    w = IMTLG().weights(grads @ grads.T, torch.ones(3, dtype=torch.float64))
    assert torch.allclose(w, torch.tensor([2 - 2**0.5, 0.0, 2**0.5 - 1], dtype=torch.float64))


def test_aligned_mtl_equalises_the_singular_values():
    # orthogonal gradients of norms 1 and 2: aligned to norm sigma_min = 1 each
    orth = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    assert torch.allclose(direction(AlignedMTL(), orth), torch.tensor([1.0, 1.0],
                                                                      dtype=torch.float64))
    # conflicting pair: G = U S V^T -> G_hat = s_min U V^T, d = G_hat^T 1
    u, s, vt = np.linalg.svd(G.numpy())
    aligned = s.min() * u @ vt
    assert np.allclose(aligned @ aligned.T, s.min()**2 * np.eye(2))  # condition number 1
    assert np.allclose(direction(AlignedMTL()).numpy(), aligned.sum(0))
    # pre-defined task weights scale the aligned gradients
    b = AlignedMTL(task_weights=dict(b=3.0))
    b.task_names = ['a', 'b']
    assert np.allclose(direction(b).numpy(), aligned[0] + 3 * aligned[1])
    b.task_names = ['a', 'c']
    with pytest.raises(KeyError, match='unknown tasks'):
        direction(b)


def test_aligned_mtl_drops_the_rounding_noise_of_a_float32_gram_matrix():
    # g3 = g1 + g2 in float32: rank 2, but the float32 Gram matrix has a third eigenvalue of
    # rounding size (~1e-7 of the largest). Kept as sigma_min, it would shrink the update to
    # that noise; the authors' tolerance (the gradients' eps) aligns the system on its range
    # The noise's sign follows the float32 summation order (BLAS kernel, threads): the first
    # seed whose noise eigenvalue is positive (kept by a float64 cut-off) is used
    for seed in range(50):
        gen = torch.Generator().manual_seed(seed)
        two = torch.randn(2, 20000, generator=gen)
        grads = torch.cat([two, (two[0] + two[1])[None]])
        gram = (grads @ grads.T).double()
        if torch.linalg.eigvalsh(gram)[0] > gram.trace() * 1e-9:  # not exactly singular
            break
    else:
        pytest.fail('no seed gives a float32 Gram matrix with a positive noise eigenvalue')
    exact = grads.double()
    u, s, vt = np.linalg.svd(exact.numpy(), full_matrices=False)
    aligned = s[1] * u[:, :2] @ vt[:2]  # sigma_min of the range, U_2 V_2^T
    d = (AlignedMTL().weights(gram, torch.ones(3, dtype=torch.float64)) @ exact).numpy()
    assert np.allclose(d, aligned.sum(0), atol=1e-4 * np.abs(aligned.sum(0)).max())


def test_aligned_mtl_weights_of_unknown_tasks_are_a_one_line_input_error():
    # found at the first step, but a config error: an UnknownNameError (still a KeyError)
    from mmmt.utils.errors import UnknownNameError
    b = AlignedMTL(task_weights=dict(b=3.0, z=1.0))
    b.task_names = ['a', 'b']
    with pytest.raises(UnknownNameError) as info:
        direction(b)
    assert str(info.value) == "AlignedMTL: task_weights for unknown tasks ['z']; tasks are " \
        "['a', 'b']"


def test_nash_mtl_satisfies_the_bargaining_optimality_condition():
    # orthogonal gradients: alpha_t = 1 / |g_t|
    orth = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    assert torch.allclose(NashMTL().weights(orth @ orth.T, ONES),
                          torch.tensor([1.0, 0.5], dtype=torch.float64), atol=1e-5)
    for grads in (G, 1e-3 * G, torch.randn(3, 5, dtype=torch.float64,
                                           generator=torch.Generator().manual_seed(0))):
        gram = grads @ grads.T
        alpha = NashMTL().weights(gram, torch.ones(len(grads), dtype=torch.float64))
        assert (alpha > 0).all()
        assert torch.allclose(gram @ alpha, 1 / alpha, rtol=1e-4), (gram @ alpha, 1 / alpha)
    alpha = NashMTL(max_norm=0.5).weights(G @ G.T, ONES)
    assert abs(float((alpha @ G).norm()) - 0.5) < 1e-6  # ||d||^2 = T = 2, clipped to 0.5


def test_gradnorm_weight_update_follows_eq_2():
    orth = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    lr, alpha = 0.025, 1.5
    balancer = GradNorm(alpha=alpha, lr=lr)
    # step 1: w = (1, 1) is used; G_W = (1, 2), targets = 1.5 (r = 1): grad = (-1, +2)
    assert torch.allclose(balancer.weights(orth @ orth.T, ONES), ONES)
    w1 = torch.tensor([1 + lr, 1 - 2 * lr], dtype=torch.float64)
    w1 = 2 * w1 / w1.sum()
    # step 2: losses (0.5, 1) against L(0) = (1, 1): r = (2/3, 4/3)
    assert torch.allclose(balancer.weights(orth @ orth.T, torch.tensor([0.5, 1.0],
                                                                       dtype=torch.float64)), w1)
    norms = torch.tensor([1.0, 2.0], dtype=torch.float64)
    target = (w1 * norms).mean() * torch.tensor([2 / 3, 4 / 3], dtype=torch.float64)**alpha
    w2 = w1 - lr * torch.sign(w1 * norms - target) * norms
    assert torch.allclose(balancer.state_dict()['task_weights'], 2 * w2 / w2.sum())


def test_gradnorm_rejects_non_positive_losses():
    from mmmt.utils.errors import UserInputError  # one line from the tools, not a traceback
    with pytest.raises(UserInputError, match='scheme="sum"'):
        GradNorm().weights(G @ G.T, torch.tensor([-1.0, 1.0], dtype=torch.float64))


def make(name):
    return BALANCERS.build(dict(type=name))


@pytest.mark.parametrize('name', ['PCGrad', 'CAGrad', 'GradNorm', 'IMTLG', 'MGDAUB', 'NashMTL',
                                  'AlignedMTL'])
def test_state_dict_round_trip_continues_identically(name):
    gen = torch.Generator().manual_seed(1)
    steps = [torch.randn(4, 6, dtype=torch.float64, generator=gen) for _ in range(6)]
    losses = [torch.rand(4, dtype=torch.float64, generator=gen) + 0.5 for _ in range(6)]
    straight, first = make(name), make(name)
    expected = [straight.weights(g @ g.T, l) for g, l in zip(steps, losses)]
    for g, l in zip(steps[:3], losses[:3]):
        first.weights(g @ g.T, l)
    state = first.state_dict()
    resumed = make(name)
    resumed.load_state_dict(state)
    for g, l, e in zip(steps[3:], losses[3:], expected[3:]):
        assert torch.equal(resumed.weights(g @ g.T, l), e)


def test_pcgrad_order_is_random_and_saved():
    # three tasks: the result depends on the order of the projections
    grads = torch.tensor([[1.0, 0.0], [-1.0, 1.0], [0.2, -1.0]], dtype=torch.float64)
    balancer = PCGrad(seed=0)
    seen = {tuple(balancer.weights(grads @ grads.T, torch.ones(3, dtype=torch.float64))
                  .round(decimals=6).tolist()) for _ in range(30)}
    assert len(seen) > 1
    assert isinstance(balancer.state_dict()['generator'], torch.Tensor)


def test_bad_gram_is_rejected():
    with pytest.raises(ValueError, match=r'\(T, T\)'):
        PCGrad().weights(torch.ones(2, 3), ONES)
    with pytest.raises(ValueError, match='losses'):
        PCGrad().weights(torch.ones(2, 2), torch.ones(3))


def _cagrad_sum_reference(gram: np.ndarray, c: float) -> np.ndarray:
    """CAGrad of the summed loss, solved independently (scipy's trust-constr)."""
    from scipy.optimize import LinearConstraint
    num = len(gram)
    mean = np.full(num, 1.0 / num)
    radius = c * np.sqrt(mean @ gram @ mean)
    res = scipy_minimize(lambda w: w @ gram @ mean + radius * np.sqrt(w @ gram @ w), mean,
                         method='trust-constr', bounds=[(0, 1)] * num,
                         constraints=[LinearConstraint(np.ones((1, num)), 1, 1)],
                         options=dict(gtol=1e-12, xtol=1e-14, maxiter=5000))
    w = res.x
    return num * (mean + radius / np.sqrt(w @ gram @ w) * w)


@pytest.mark.parametrize('tiny', [0.0, 1e-9])
def test_cagrad_and_nash_leave_out_a_task_with_a_zero_gradient(tiny):
    # a task without a valid pixel: its gradient is 0 (or float32 noise, 1e-9 of the others)
    # and got CAGrad weight 1.1e15 / Nash-MTL 5773; now 0, and the others get the method on
    # their own, checked against independent solutions
    rng = np.random.default_rng(3)
    g = rng.standard_normal((2, 6))
    grads = np.stack([g[0], tiny * rng.standard_normal(6), g[1]])
    gram = torch.as_tensor(grads @ grads.T)
    ones = torch.ones(3, dtype=torch.float64)
    w = CAGrad().weights(gram, ones).numpy()
    assert w[1] == 0
    np.testing.assert_allclose(w[[0, 2]], _cagrad_sum_reference(g @ g.T, 0.4), rtol=1e-5)
    alpha = NashMTL().weights(gram, ones).numpy()
    assert alpha[1] == 0
    sub = g @ g.T  # G G^T alpha = 1 / alpha on the two others
    np.testing.assert_allclose(sub @ alpha[[0, 2]], 1 / alpha[[0, 2]], rtol=1e-6)


def _assert_pinned(weights, pinned, rtol: float = 1e-12) -> None:
    """``weights`` equal the ``pinned`` float.hex values to ``rtol`` relative (an exact 0 stays
    exactly 0): bit-identical pins broke between CPUs, whose BLAS rounds ``g @ g.T`` in its
    last bit differently; a change of the method moves the weights by far more."""
    expected = np.array([[float.fromhex(h) for h in row] for row in np.atleast_2d(pinned)])
    np.testing.assert_allclose(np.atleast_2d(np.asarray(weights, dtype=np.float64)), expected,
                               rtol=rtol, atol=0)


def test_cagrad_and_nash_non_degenerate_unchanged():
    # pinned at the commit before the zero-gradient handling
    g = torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gram, ones = g @ g.T, torch.ones(3, dtype=torch.float64)
    _assert_pinned(CAGrad().weights(gram, ones), [
        '0x1.0000000000002p+0', '0x1.c209c469e2136p+0', '0x1.0000000000000p+0'])
    _assert_pinned(NashMTL().weights(gram, ones), [
        '0x1.137061e809a00p-1', '0x1.e458f73a086aap-1', '0x1.87c0cf8077a37p-2'])
    # a short (2e-4 of the longest) but exact gradient is the dual's vertex: not cancelled,
    # its direction is exact, its large weight is the paper's (not the opposite-pair case)
    short = torch.tensor([[-3e-3, 1.5e-3, 2e-3], [-19.0, 5.0, -4.5], [-0.1, 0.2, -1.5]],
                         dtype=torch.float64)
    # the vertex solution is ill-conditioned (the short row is 2e-4 of the longest): one ulp of
    # BLAS rounding in the Gram matrix moves it by ~1e-9 relative, a method change by far more
    _assert_pinned(CAGrad().weights(short @ short.T, ones), [
        '0x1.08ff077abb45ap+11', '0x1.0000000000000p+0', '0x1.0000004382821p+0'], rtol=1e-7)


@pytest.mark.parametrize('tiny', [0.0, 1e-9])
def test_mgda_leaves_out_a_task_with_a_zero_gradient(tiny):
    # a zero gradient is the min-norm point of the hull: it took weight 1 and d = 0 for every
    # task (1e-9 of noise: d of the noise's size). Now MGDA of the pair by hand (3/5, 2/5)
    grads = _with_tiny_task(G, tiny)
    three = torch.ones(3, dtype=torch.float64)
    w = MGDAUB().weights(grads @ grads.T, three)
    assert torch.allclose(w, torch.tensor([0.6, 0.0, 0.4], dtype=torch.float64), atol=1e-12)
    assert w[1] == 0
    # a normalisation divides by the norm: the noise was a unit vector of its own
    w = MGDAUB(normalization='l2').weights(grads @ grads.T, three)
    expected = MGDAUB(normalization='l2').weights(G @ G.T, ONES)
    assert w[1] == 0 and torch.equal(w[[0, 2]], expected)


@pytest.mark.parametrize('tiny', [0.0, 1e-9])
def test_pcgrad_leaves_out_a_task_with_a_zero_gradient(tiny):
    # the pair by hand: g1^PC = g1 + g2 / 2, g2^PC = g2 + g1, w = (2, 3/2). Projecting onto the
    # normal plane of 1e-9 of noise gave that task coefficients up to 1e8 (order-dependent)
    grads = _with_tiny_task(G, tiny)
    balancer, reference = PCGrad(seed=0), PCGrad(seed=0)
    three = torch.ones(3, dtype=torch.float64)
    for _ in range(20):  # every task order
        w = balancer.weights(grads @ grads.T, three)
        assert torch.equal(w, torch.tensor([2.0, 0.0, 1.5], dtype=torch.float64)), w
        reference.weights(torch.eye(3, dtype=torch.float64), three)
    # the random order drawn as on any 3-task step: the later steps are unchanged
    assert torch.equal(balancer.state_dict()['generator'], reference.state_dict()['generator'])


def test_gradnorm_leaves_out_a_task_with_a_zero_gradient():
    # the two-task problem of test_gradnorm_weight_update_follows_eq_2 with a third task whose
    # gradient is 0 (no valid pixel in the batch: loss 0 after the first step, which must have
    # positive losses): the two are balanced as without it, its weight stays 1. Before, G = 0 in
    # mean(G) (and its loss ratio 0 in the ratios' mean) pulled both others down at every step
    orth = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    grads = torch.stack([orth[0], torch.zeros(2, dtype=torch.float64), orth[1]])
    three, two = GradNorm(), GradNorm()
    for step, losses in enumerate(([1.0, 1.0], [0.5, 1.0], [0.6, 0.9])):
        pair = torch.tensor(losses, dtype=torch.float64)
        zero_loss = pair.new_tensor(1.0 if step == 0 else 0.0)
        w3 = three.weights(grads @ grads.T, torch.stack([pair[0], zero_loss, pair[1]]))
        w2 = two.weights(orth @ orth.T, pair)
        assert w3[1] == 1 and torch.allclose(w3[[0, 2]], w2, rtol=1e-14)
    state = three.state_dict()['task_weights']
    assert state[1] == 1 and torch.allclose(state[[0, 2]], two.state_dict()['task_weights'])
    # a frozen head for 300 steps: the others keep weights of order one (they were driven to
    # the 1e-8 floor and the frozen task took all of T = 3)
    gradnorm = GradNorm()
    for _ in range(300):
        w = gradnorm.weights(grads @ grads.T, torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
                             if gradnorm.state_dict()['task_weights'] is not None else
                             torch.ones(3, dtype=torch.float64))
    assert w[1] == 1 and (w[[0, 2]] > 0.5).all(), w


def test_aligned_mtl_zero_gradient_task_gets_weight_0():
    # already so: a zero gradient's eigenvalue is dropped, the others are aligned on their own
    grads = torch.stack([G[0], torch.zeros(2, dtype=torch.float64), G[1]])
    w = AlignedMTL().weights(grads @ grads.T, torch.ones(3, dtype=torch.float64))
    assert w[1] == 0
    assert torch.allclose(w[[0, 2]], AlignedMTL().weights(G @ G.T, ONES), rtol=1e-12)


def test_opposite_gradients():
    # g2 = -g1: no direction improves both. MGDA's min-norm point (and IMTL-G's equal
    # projections, PCGrad's two projections, CAGrad's g_0, the sum of the aligned pair) is d = 0
    g1 = torch.tensor([3.0, 4.0], dtype=torch.float64)
    opp = torch.stack([g1, -g1])
    half = torch.tensor([0.5, 0.5], dtype=torch.float64)
    assert torch.equal(MGDAUB().weights(opp @ opp.T, ONES), half)
    assert torch.equal(IMTLG().weights(opp @ opp.T, ONES), half)
    assert torch.equal(PCGrad().weights(opp @ opp.T, ONES), 2 * ONES)  # 2 g1 + 2 g2 = 0
    assert torch.equal(CAGrad().weights(opp @ opp.T, ONES), ONES)  # g_0 = 0: radius 0
    assert float(direction(AlignedMTL(), opp).norm()) < 1e-12
    # g2 = -2 g1: MGDA and IMTL-G weight (2/3, 1/3), d = 0; PCGrad (3, 3/2), d = 0; the aligned
    # system is G itself (rank 1, one singular value): d = g1 + g2 = -g1
    opp2 = torch.stack([g1, -2 * g1])
    third = torch.tensor([2 / 3, 1 / 3], dtype=torch.float64)
    assert torch.allclose(MGDAUB().weights(opp2 @ opp2.T, ONES), third, atol=1e-15)
    assert torch.allclose(IMTLG().weights(opp2 @ opp2.T, ONES), third, atol=1e-15)
    assert torch.equal(PCGrad().weights(opp2 @ opp2.T, ONES),
                       torch.tensor([3.0, 1.5], dtype=torch.float64))
    assert torch.allclose(direction(AlignedMTL(), opp2), -g1, atol=1e-12)


@pytest.mark.parametrize('eps', [1e-3, 1e-6])
def test_nearly_opposite_gradients_give_a_small_finite_update(eps):
    # g2 = -g1 + eps h: the updates go continuously to the exactly opposite case's d = 0
    g1 = torch.tensor([3.0, 4.0], dtype=torch.float64)
    h = torch.tensor([-4.0, 3.0], dtype=torch.float64) / 5
    near = torch.stack([g1, -g1 + eps * h])
    for balancer in (MGDAUB(), IMTLG(), PCGrad(), AlignedMTL(), CAGrad()):
        w = balancer.weights(near @ near.T, ONES)
        assert torch.isfinite(w).all() and float(w.abs().max()) <= 2.5, (balancer, w)
        assert float((w @ near).norm()) <= 3 * eps, (balancer, w @ near)
    # MGDA by hand: w_1 = (g2 - g1) . g2 / |g1 - g2|^2 = (50 + eps^2) / (100 + eps^2)
    w1 = (50 + eps**2) / (100 + eps**2)
    assert torch.allclose(MGDAUB().weights(near @ near.T, ONES),
                          torch.tensor([w1, 1 - w1], dtype=torch.float64), atol=1e-15)


def test_mgda_pcgrad_imtlg_gradnorm_non_degenerate_unchanged():
    # pinned at the commit before the zero-gradient handling
    g = torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gram, ones = g @ g.T, torch.ones(3, dtype=torch.float64)
    losses = torch.tensor([0.5, 1.5, 2.0], dtype=torch.float64)

    _assert_pinned(MGDAUB().weights(gram, losses), [
        '0x1.7d03ef5cfa61ap-2', '0x1.417e085182cf4p-1', '0x0.0p+0'])
    _assert_pinned(MGDAUB(normalization='l2').weights(gram, losses), [
        '0x1.ffffffffffffep-2', '0x1.0000000000001p-1', '0x0.0p+0'])
    _assert_pinned(MGDAUB(normalization='loss+').weights(gram, losses), [
        '0x1.45bbff50a93adp-3', '0x1.42635f21639f8p-1', '0x1.b0b68429c8475p-3'])
    _assert_pinned(IMTLG().weights(gram, ones), [
        '0x1.ed2bbdc75f52ep-2', '0x1.67d8600ed7fc0p-1', '-0x1.79b8fbca1e95bp-3'])
    pcgrad = PCGrad()
    _assert_pinned([pcgrad.weights(gram, ones).tolist() for _ in range(3)], [
        ['0x1.73d920b7e1206p+0', '0x1.1b088baf2ef64p+1', '0x1.0c7858fe8210fp+0'],
        ['0x1.73d920b7e1206p+0', '0x1.1b088baf2ef64p+1', '0x1.0c7858fe8210fp+0'],
        ['0x1.77b015311150ap+0', '0x1.1b088baf2ef64p+1', '0x1.0000000000000p+0']])
    gradnorm = GradNorm()
    _assert_pinned([gradnorm.weights(gram, losses * s).tolist() for s in (1.0, 0.8, 0.6)], [
        ['0x1.0000000000000p+0', '0x1.0000000000000p+0', '0x1.0000000000000p+0'],
        ['0x1.d7248ced13396p-1', '0x1.0a3b102d9bf0ep+0', '0x1.0a32a95bda728p+0'],
        ['0x1.ae8d300a428c8p-1', '0x1.146513cf1208dp+0', '0x1.1454542bccb0ep+0']])
    _assert_pinned(gradnorm.state_dict()['task_weights'], [
        '0x1.863977e0f43f8p-1', '0x1.1e7e274db332dp+0', '0x1.1e651cc1d2ad7p+0'])


def test_cagrad_exactly_opposite_pair_with_a_third_task():
    # g_2 = -g_1: the best g_w of the dual is 0 (w = (1/2, 1/2, 0)) and d = g_0 + r g_w / |g_w|
    # is 0/0; it was g_0 + 1e10 x noise (float32 could not cancel the weights: d off by 3e3).
    # Every d of the ball orthogonal to g_1 is optimal (the worst task gets 0); CAGrad's choice
    # for the third: its problem projected onto g_1's orthogonal complement. By hand, for the
    # sum (T = 3): d = P g_3 (1 + sqrt(c^2 |g_3|^2 - (g_3 . u_1)^2) / |P g_3|) = (0, 1.35553..)
    g1, g3, c = torch.tensor([1.0, 0.0]), torch.tensor([0.2, 1.0]), 0.4
    grads = torch.stack([g1, -g1, g3]).double()
    w = CAGrad(c=c).weights(grads @ grads.T, torch.ones(3, dtype=torch.float64))
    scale = 1 + (c**2 * 1.04 - 0.2**2)**0.5
    assert torch.allclose(w @ grads, torch.tensor([0.0, scale], dtype=torch.float64), atol=1e-9)
    # the minimum-norm coefficients: P g_3 = g_3 - 0.1 g_1 + 0.1 g_2
    assert torch.allclose(w, scale * torch.tensor([-0.1, 0.1, 1.0], dtype=torch.float64),
                          atol=1e-9)


@pytest.mark.parametrize('seed,dims,scale,c', [(2, 6, 1.0, 0.4), (0, 7, 1.5, 0.8)])
def test_cagrad_opposite_pair_float32_matches_the_primal_problem(seed, dims, scale, c):
    # float32 tasks (g, -scale g, others): checked against the primal, solved independently
    # in d: max t s.t. g_t.d >= t for the others, g.d = 0, |d - T g_0| <= T c |g_0|. With
    # scale 1.5 the solver stalls with weights of 1e-4 on the others: not part of the pair
    from scipy.optimize import minimize
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(dims - 3, dims, generator=gen)
    grads = torch.cat([base[:1], -scale * base[:1], base[1:]])  # float32
    num = len(grads)
    gram = (grads @ grads.T).double()
    w = CAGrad(c=c).weights(gram, torch.ones(num, dtype=torch.float64))
    assert float(w.abs().max()) < 10, w  # was 1e10
    d32 = (w.float() @ grads).double()
    exact = grads.double().numpy()
    center = exact.sum(0)  # T g_0
    radius = c * np.linalg.norm(center)
    cons = [dict(type='ineq', fun=lambda x: exact[2:] @ x[:dims] - x[dims]),
            dict(type='eq', fun=lambda x: exact[0] @ x[:dims]),
            dict(type='ineq', fun=lambda x: radius**2 - np.sum((x[:dims] - center)**2))]
    x0 = np.concatenate([center - (center @ exact[0]) / (exact[0] @ exact[0]) * exact[0], [0.0]])
    ref = minimize(lambda x: -x[dims], x0, method='SLSQP', constraints=cons,
                   options=dict(ftol=1e-14, maxiter=1000)).x[:dims]
    np.testing.assert_allclose(d32.numpy(), ref, atol=1e-4 * np.linalg.norm(ref))


def test_nash_mtl_opposite_gradients():
    # g2 = -g1 + eps h: the bargaining solution (alpha growing as 1 / eps, 1414 at eps = 1e-3)
    # is found while it fits in the solver's bound, with ||d||^2 = T = 2
    g1 = torch.tensor([3.0, 4.0], dtype=torch.float64)
    h = torch.tensor([-4.0, 3.0], dtype=torch.float64) / 5
    for eps in (1e-1, 1e-2, 1e-3):
        near = torch.stack([g1, -g1 + eps * h])
        alpha = NashMTL().weights(near @ near.T, ONES)
        assert torch.allclose((near @ near.T) @ alpha, 1 / alpha, rtol=1e-4)
        assert abs(float((alpha @ near).norm()) - 2**0.5) < 1e-5
    # exactly opposite: no d improves both (the paper assumes independent gradients) and no
    # alpha solves G G^T alpha = 1 / alpha; the solver stops at its bound 1e4 / sqrt(trace),
    # with equal weights: d = 0, the bargaining's disagreement point
    opp = torch.stack([g1, -g1])
    alpha = NashMTL().weights(opp @ opp.T, ONES)
    assert alpha[0] == alpha[1] and abs(float(alpha[0]) - 1e4 / 50**0.5) < 1e-6
    assert float((alpha @ opp).norm()) < 1e-9


def test_gradnorm_task_without_labels_in_the_first_batch():
    # loss 0 and a zero gradient at step 1 (raised 'needs positive task losses' before): its
    # weight stays 1, the two others are balanced on their own, and its L(0) is its first
    # positive loss (0.8 at step 2), from where it is balanced as any task
    grads = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]], dtype=torch.float64)
    first = grads.clone()
    first[1] = 0
    pair = grads[[0, 2]][:, [0, 2]]
    gradnorm, two = GradNorm(), GradNorm()
    assert torch.equal(gradnorm.weights(first @ first.T, torch.tensor([1.0, 0.0, 1.0],
                                                                      dtype=torch.float64)),
                       torch.ones(3, dtype=torch.float64))
    two.weights(pair @ pair.T, ONES)
    state = gradnorm.state_dict()
    assert state['task_weights'][1] == 1
    assert torch.equal(state['task_weights'][[0, 2]], two.state_dict()['task_weights'])
    losses = torch.tensor([0.5, 0.8, 1.0], dtype=torch.float64)
    w = gradnorm.weights(grads @ grads.T, losses)
    assert torch.equal(w, state['task_weights'])
    assert gradnorm.state_dict()['initial_losses'].tolist() == [1.0, 0.8, 1.0]
    # the same step from a state that had L(0) = 0.8 all along
    reference = GradNorm()
    reference.load_state_dict(dict(task_weights=state['task_weights'],
                                   initial_losses=torch.tensor([1.0, 0.8, 1.0],
                                                               dtype=torch.float64)))
    reference.weights(grads @ grads.T, losses)
    assert torch.equal(gradnorm.state_dict()['task_weights'],
                       reference.state_dict()['task_weights'])
    # a loss of 0 with a nonzero gradient is not a task without labels: rejected as before
    with pytest.raises(ValueError, match='scheme="sum"'):
        GradNorm().weights(grads @ grads.T, torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64))
