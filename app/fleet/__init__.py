"""B2B fleet clients (issue 6): organisations, their members, API keys, policies, webhooks and
usage reports. Every read and write here is scoped to one organisation: a caller of another
organisation gets "not found", never "forbidden" with details."""
