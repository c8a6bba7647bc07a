"""D2A engine: the Qt-free core of D2A Desktop (generators, landmarks, distillers, animator, runtime, CLI).

Nothing here imports PySide6; heavy libraries (torch, mediapipe, onnxruntime) are imported lazily by the
submodules that need them so that ``import engine`` and ``d2a --help`` stay fast.
"""

__version__ = "0.1.0"
