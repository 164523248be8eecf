"""The web console and (later) the labeling and review UI: server-rendered Jinja2 pages with small plain
JavaScript, no build step. Pages read the same services and REST API as the CLI."""
