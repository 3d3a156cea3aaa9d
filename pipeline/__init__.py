"""Credit assessment pipeline: affordability features, PD and limit models, policy, registry, scoring."""

__version__ = "0.1.0"
