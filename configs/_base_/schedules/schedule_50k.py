# The MTMamba recipe (docs/differences.md): AdamW, one parameter group for the whole model
# (weight decay on everything, including norms, biases, A_log and D), polynomial decay to 0 with
# power 0.9 stepped every iteration, no warm-up, no gradient clipping, fp32.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-5,
        amsgrad=False),
    clip_grad=None)

max_iters = 50000
# end = max_iters + 1: mmengine's PolyLR decays over end - begin - 1 steps, and the reference's
# lr_i = base * (1 - i / max_iters) ** 0.9 for the updates i = 0 .. max_iters - 1
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters + 1, by_epoch=False)
]

# The reference evaluates on the test split after every pass over the training set and keeps
# the best checkpoint by a surrogate score; here validation runs at a fixed interval instead.
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# The recipe's global batch: 8 GPUs x 1 image. `tools/train.py --auto-scale-lr` scales the lr
# linearly to another global batch (off by default: the reference never rescales).
auto_scale_lr = dict(enable=False, base_batch_size=8)
