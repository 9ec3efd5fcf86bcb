# Paper Table 2, "Single-task 2*Swin" (the baseline of Delta_m): the edge model, a Swin-L
# encoder and the 2*Swin decoder of multitask-2xswin_swin-l_nyud.py for this one task. The
# paper's 888.77 M parameters are the sum of the four single-task models (docs/complexity.md).
_base_ = ['./multitask-2xswin_swin-l_nyud.py']

tasks = ['edge']
model = dict(decode_head=dict(tasks=dict(_delete_=True, edge=1)))
train_dataloader = dict(dataset=dict(tasks=tasks))
val_dataloader = dict(dataset=dict(tasks=tasks))
test_dataloader = val_dataloader
val_evaluator = dict(tasks=tasks)
test_evaluator = val_evaluator
