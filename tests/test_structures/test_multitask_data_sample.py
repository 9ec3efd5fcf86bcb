"""The prediction arrays users get from mmmt (``pred_to_array``): layout and dtypes."""
import numpy as np
import torch

from mmmt.structures import pred_to_array


def test_class_maps_are_uint8_up_to_256_classes_then_uint16():
    # 256 classes (indices 0..255) still fit a uint8 PNG; 257 need 16 bits
    labels = torch.tensor([[[0, 255], [7, 3]]])
    arr = pred_to_array(labels, num_classes=256)
    assert arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, [[0, 255], [7, 3]])
    arr = pred_to_array(torch.tensor([[[0, 256]]]), num_classes=257)
    assert arr.dtype == np.uint16
    np.testing.assert_array_equal(arr, [[0, 256]])
    # without num_classes: from the largest index (255 -> 256 classes)
    assert pred_to_array(labels).dtype == np.uint8


def test_float_maps_are_hwc_float32():
    normals = torch.arange(12, dtype=torch.float64).view(3, 2, 2)
    arr = pred_to_array(normals)
    assert arr.shape == (2, 2, 3) and arr.dtype == np.float32
    np.testing.assert_array_equal(arr[1, 0], [2, 6, 10])  # (c, y=1, x=0) = 4c + 2
