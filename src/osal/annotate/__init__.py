"""Open-set annotation with a person as the oracle: projects, batch files, answer import (docs/annotation.md)."""
