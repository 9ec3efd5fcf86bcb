"""Scores of trivial predictors on a NYUD-layout dataset, to judge whether a model learned.

* semseg: the most frequent training class everywhere (mIoU, pixel accuracy);
* depth: the mean training depth everywhere (global RMSE);
* normals: the mean training normal direction everywhere (mean angular error).

Example:
    python tools/analysis_tools/trivial_baselines.py data/synthetic_nyud
"""
import argparse

import numpy as np

from mmmt.utils.errors import run_main

TASKS = ['semseg', 'depth', 'normals']
LOAD = [dict(type='LoadMultiTaskAnnotations'), dict(type='AddIgnoreRegions')]


def labels(data_root: str, split: str):
    from mmmt.datasets import NYUDv2MultiTaskDataset
    dataset = NYUDv2MultiTaskDataset(
        data_root=data_root, split=split, tasks=TASKS, pipeline=LOAD)
    for i in range(len(dataset)):
        yield dataset[i]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root', help='NYUD-layout dataset root')
    args = parser.parse_args()
    # after parsing (mmmt's datasets and metrics import torch): --help answers at once
    from mmmt.evaluation.functional.depth import depth_metrics, depth_sums
    from mmmt.evaluation.functional.normals import normals_metrics, normals_stats
    from mmmt.evaluation.functional.segmentation import segmentation_counts, segmentation_metrics
    from mmmt.utils import register_all_modules
    register_all_modules()

    class_hist = np.zeros(256, dtype=np.int64)
    depth_sum = depth_count = 0.0
    normal_sum = np.zeros(3)
    for sample in labels(args.data_root, 'train'):
        class_hist += np.bincount(sample['gt_semseg'].ravel().astype(np.int64), minlength=256)
        depth = sample['gt_depth']
        valid = depth != 255
        depth_sum += depth[valid].sum()
        depth_count += valid.sum()
        normals = sample['gt_normals'].reshape(-1, 3)
        normal_sum += normals[(normals != 255).all(1)].sum(0)
    class_hist[255] = 0
    majority = int(class_hist.argmax())
    mean_depth = depth_sum / depth_count
    mean_normal = normal_sum / np.linalg.norm(normal_sum)

    seg, dep, nor = [], [], []
    for sample in labels(args.data_root, 'val'):
        gt = sample['gt_semseg'][..., 0] if sample['gt_semseg'].ndim == 3 else sample['gt_semseg']
        seg.append(segmentation_counts(np.full_like(gt, majority), gt, num_classes=40))
        depth = sample['gt_depth'].squeeze()
        dep.append(depth_sums(np.full_like(depth, mean_depth), depth))
        normals = sample['gt_normals'].transpose(2, 0, 1)
        nor.append(normals_stats(np.broadcast_to(mean_normal[:, None, None], normals.shape),
                                 normals))
    seg_m = segmentation_metrics(seg, num_classes=40)
    print(f'semseg: majority class {majority}: mIoU {100 * seg_m["mIoU"]:.2f}, '
          f'pixel acc {100 * seg_m["pixel_acc"]:.2f}')
    print(f'depth: mean {mean_depth:.3f} m: RMSE {depth_metrics(dep)["rmse"]:.4f}')
    print(f'normals: mean direction: mean angle {normals_metrics(nor)["mean"]:.2f} deg')


if __name__ == '__main__':
    run_main(main)
