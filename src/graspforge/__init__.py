"""graspforge: grasp synthesis with GraspQP and MALA*.

Data flows one way: geometry -> hands/objects -> energy -> optimize -> grasp sets -> evaluate -> files.
"""

__version__ = "0.1.0"
