# The MTMamba++ schedule (docs/differences.md): as schedule_50k.py but 40k iterations; each
# MTMamba++ config sets its own lr and weight decay.
_base_ = ['./schedule_50k.py']

max_iters = 40000
# end = max_iters + 1: mmengine's PolyLR decays over end - begin - 1 steps, and the reference's
# lr_i = base * (1 - i / max_iters) ** 0.9 for the updates i = 0 .. max_iters - 1
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters + 1, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
