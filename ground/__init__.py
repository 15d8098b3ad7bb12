"""The ground floor: what every layer may import (the command runner, units, errors, paths,
defaults). It imports nothing else of ours."""
