import os

# Progress bars off under test (nbval kernels inherit this too).
os.environ.setdefault("REPROBOOK_PROGRESS", "0")
