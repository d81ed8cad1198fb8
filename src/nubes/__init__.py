"""nubes: a self-hosted Elastic Compute Service speaking the ECS and VPC OpenAPI."""

__version__ = "0.1.0"
