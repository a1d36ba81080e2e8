"""Self-supervised pretraining of the RF foundation model (`tinylarge pretrain`).

`masking` draws the hidden patches and the reconstruction loss; `loop` is the training loop
(one process, or one replica of a data-parallel group); `ray_train` runs it on Ray Train
workers. Checkpoints are read and written by `tinylarge.models.checkpoints`.
"""
