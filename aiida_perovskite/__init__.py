"""AiiDA workflows that build Deep Potential models for perovskite oxides and use them for science."""

__version__ = "0.1.0"
