import sys
from pathlib import Path

# Make tests/ helpers importable (graphs.py) whatever the working directory.
sys.path.insert(0, str(Path(__file__).parent))
