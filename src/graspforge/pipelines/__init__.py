"""Pipelines: the library's end-to-end runs, built from the core packages, :mod:`graspforge.io`,
:mod:`graspforge.evaluate` and :mod:`graspforge.viz`; the CLI is a thin layer over them.

- :mod:`.synthesis`: objects + hand + config -> optimised grasp sets (``graspforge generate``)
- :mod:`.evaluation`: a grasp set simulated under protocols, measured, summarised, stored with its
  sidecar (``graspforge evaluate``); :mod:`.synthesis` runs it for its physics check
- :mod:`.dataset_build`: resumable (object, hand, grasp type) jobs over a dataset folder
  (``graspforge dataset build``)
- :mod:`.paper`: the paper's comparison and its report (``graspforge bench paper``)

Nothing is imported here, so importing one pipeline does not load the others.
"""
