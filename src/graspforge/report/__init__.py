"""Moved: the paper's comparison (``graspforge bench paper``) is :mod:`graspforge.pipelines.paper`;
:mod:`.paper` here is an alias that keeps old imports working."""
