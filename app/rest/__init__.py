"""The REST interfaces, beside the GraphQL schema (graphql_schema/) and the CLI (app/cli.py,
app/commands/): push ingest (``ingest``), usage reports as CSV (``reports``), GBFS
re-publishing (``gbfs``) and the browser assets (``web_assets``). Each router parses the
request and calls its domain's service; the rules live in the domains."""
