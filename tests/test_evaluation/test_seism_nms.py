"""SEISM's structured-edge NMS on hand-made maps whose answer is known."""
import numpy as np
import pytest
from scipy import signal

from mmmt.evaluation.functional import conv_tri, seism_nms, seism_orientation, structured_edge_nms
from mmmt.evaluation.functional.seism_nms import triangle_kernel

H, W = 48, 64


def _ridge_distance(normal_deg: float, offset: float = 0.3) -> np.ndarray:
    """Signed distance of every pixel centre to a straight line with the given normal angle.

    The angle is measured from the x axis (columns) towards the y axis (rows, downwards).
    """
    phi = np.deg2rad(normal_deg)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    return (xx - W / 2) * np.cos(phi) + (yy - H / 2) * np.sin(phi) + offset


def _blurred_line(normal_deg: float, sigma: float = 1.5) -> np.ndarray:
    return np.exp(-_ridge_distance(normal_deg)**2 / (2 * sigma**2)).astype(np.float32)


def test_triangle_kernel_and_symmetric_padding():
    np.testing.assert_allclose(triangle_kernel(4), np.array([1, 2, 3, 4, 5, 4, 3, 2, 1]) / 25)
    rng = np.random.default_rng(0)
    # convTri is documented as: pad symmetrically (border sample repeated) by r, convolve
    # 'valid' with f and f'. Also on a map smaller than the filter (padding wraps further).
    for shape in ((13, 17), (6, 7)):
        image = rng.random(shape)
        f = triangle_kernel(4)
        padded = np.pad(image, 4, mode='symmetric')
        expected = signal.convolve2d(padded, f[None, :] * f[:, None], mode='valid')
        np.testing.assert_allclose(conv_tri(image, 4), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='radius'):
        triangle_kernel(0)


@pytest.mark.parametrize('normal_deg', [0, 30, 45, 60, 120, 135, 160])
def test_orientation_on_a_quadratic_ridge(normal_deg):
    # E = -d^2: smoothing and the central differences are exact on a quadratic, so the
    # Hessian is -2 n n^T and the toolbox formula gives atan(tan(phi)^2) in phi's quadrant
    # (exact for multiples of 45 degrees only).
    d = _ridge_distance(normal_deg, offset=0.0)
    orientation = seism_orientation((-0.01 * d**2).astype(np.float32))
    phi = np.deg2rad(normal_deg)
    magnitude = np.arctan(np.tan(phi)**2)
    expected = np.mod(np.sign(np.cos(phi) * np.sin(phi)) * magnitude, np.pi)
    inner = orientation[8:-8, 8:-8]
    # compare angles modulo pi
    err = np.abs(np.angle(np.exp(2j * (inner.astype(np.float64) - expected)))) / 2
    assert err.max() < 1e-3
    if normal_deg in (0, 45, 135):
        assert expected == pytest.approx(np.mod(phi, np.pi))


@pytest.mark.parametrize('normal_deg', [0, 20, 30, 45, 60, 75, 105, 120, 135, 160])
def test_blurred_line_becomes_one_pixel_wide(normal_deg):
    line = _blurred_line(normal_deg)
    dist = _ridge_distance(normal_deg)
    kept = seism_nms(line) > 0.05
    inner = (slice(6, -6), slice(6, -6))
    assert (line[inner] > 0.05).sum() > 3 * kept[inner].sum()  # a band ~5 pixels wide before
    # every survivor lies within half a pixel (diagonal) of the ridge: one pixel wide
    assert np.abs(dist[inner][kept[inner]]).max() < np.sqrt(0.5) + 1e-6
    # and the ridge is unbroken: in each row (steep lines) or column the line crosses, the pixel
    # closest to the ridge survives
    steep = abs(np.cos(np.deg2rad(normal_deg))) >= abs(np.sin(np.deg2rad(normal_deg)))
    d_in, k_in = np.abs(dist[inner]), kept[inner]
    if not steep:
        d_in, k_in = d_in.T, k_in.T
    nearest = np.argmin(d_in, axis=1)
    lines = np.arange(d_in.shape[0])
    crossed = d_in[lines, nearest] < 0.75
    assert crossed.sum() > 20
    assert k_in[lines, nearest][crossed].all()


def test_horizontal_line_keeps_the_toolbox_degeneracy():
    # Along an exactly horizontal ridge Oxy is exactly 0, sign(0) = 0, so the toolbox's formula
    # gives O = 0 and compares neighbours along the line: nothing across it is suppressed.
    # mmmt keeps this, as SEISM does (docs/metrics.md).
    line = _blurred_line(90)
    inner = (slice(6, -6), slice(6, -6))
    assert np.all(seism_orientation(line)[inner] == 0)
    np.testing.assert_array_equal(seism_nms(line)[inner], line[inner])


def test_constant_map_is_only_attenuated_at_the_border():
    out = seism_nms(np.full((H, W), 0.6, np.float32))
    ramp = np.array([0, 1, 2, 3, 4]) / 5
    col = np.ones(W)
    col[:5], col[-5:] = ramp, ramp[::-1]
    row = np.ones(H)
    row[:5], row[-5:] = ramp, ramp[::-1]
    np.testing.assert_allclose(out, 0.6 * row[:, None] * col[None, :], rtol=1e-6)
    assert out.dtype == np.float32
    # the ramp is clipped to half the image
    small = seism_nms(np.ones((4, 9), np.float32))
    np.testing.assert_allclose(small[:, 4], [0, 0.5, 0.5, 0])


def test_isolated_peak_survives():
    single = np.zeros((H, W), np.float32)
    single[20, 30] = 0.8
    out = seism_nms(single)
    assert out[20, 30] == np.float32(0.8) and np.count_nonzero(out) == 1
    yy, xx = np.mgrid[0:H, 0:W]
    blob = np.exp(-((yy - 20)**2 + (xx - 30)**2) / 8.0).astype(np.float32)
    noisy = blob + 0.05 * np.random.default_rng(0).random((H, W)).astype(np.float32)
    for image in (blob, noisy):
        assert seism_nms(image)[20, 30] == image[20, 30]


def test_multiplier_makes_the_suppression_conservative():
    # O = 0: each pixel is compared with its left and right neighbours (r = 1).
    edges = np.zeros((12, 12), np.float32)
    edges[6, 5], edges[6, 6] = 1.0, 1.005
    orientation = np.zeros_like(edges)
    out = structured_edge_nms(edges, orientation, border=0)
    assert out[6, 5] == 1.0 and out[6, 6] == np.float32(1.005)  # 1.01 * 1.0 > 1.005
    edges[6, 6] = 1.02
    out = structured_edge_nms(edges, orientation, border=0)
    assert out[6, 5] == 0 and out[6, 6] == np.float32(1.02)
    # a larger radius looks further
    edges[6, 6], edges[6, 7] = 0.0, 1.5
    assert structured_edge_nms(edges, orientation, radius=1, border=0)[6, 5] == 1.0
    assert structured_edge_nms(edges, orientation, radius=2, border=0)[6, 5] == 0


def test_bad_input():
    with pytest.raises(ValueError, match='2x2'):
        seism_nms(np.zeros((1, 5)))
    with pytest.raises(ValueError, match='orientation'):
        structured_edge_nms(np.zeros((4, 4)), np.zeros((3, 4)))
