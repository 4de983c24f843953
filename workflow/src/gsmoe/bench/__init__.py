"""Benchmark of the MoE layer and of training: vectorised code vs the per-expert loop.

``python -m gsmoe.bench [layers] [--quick]`` measures, for experiments of ``config.yaml``
(the baseline, dense gating with 4, 8 and 16 experts, noisy top-4 of 128 experts) and two
variants (top-k with per-node routing, 128 dense experts), on Cora and PubMed (full graph)
and ENZYMES (mini-batches), each against its :mod:`gsmoe.nn.reference` twin (the
straightforward loop over all experts):

``layer``
    forward + backward of the first :class:`~gsmoe.nn.SAGEMoEConv`, fed as the model feeds
    it (sparse features on Planetoid);
``epoch``
    one training epoch with the optimiser step, as training runs it
    (:func:`gsmoe.optim.make_optimizer`; the loop reference takes the plain full Adam step);
``step``
    graph datasets only: one step on the first mini-batch;
``memory``
    peak resident memory added by training steps (a fresh interpreter per workload).

``python -m gsmoe.bench runs`` times short training runs of every experiment and
extrapolates to the configured epochs; ``python -m gsmoe.bench products`` measures the share
of matrix products in training.  Modules, one job each: :mod:`~gsmoe.bench.workloads` (what
is trained, from the config), :mod:`~gsmoe.bench.timer`, :mod:`~gsmoe.bench.timings`
(layer, step, epoch), :mod:`~gsmoe.bench.memory` (the child process and its protocol),
:mod:`~gsmoe.bench.runs` (whole runs, products), :mod:`~gsmoe.bench.targets`,
:mod:`~gsmoe.bench.render` (environment, Markdown, atomic files), :mod:`~gsmoe.bench.cli`.
"""
