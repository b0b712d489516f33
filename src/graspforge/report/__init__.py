"""Reports: the paper's comparison rerun (``graspforge bench paper``)."""
