"""The public GraphQL API: thin resolvers that parse arguments, call one service, map results."""
