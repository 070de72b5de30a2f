// GraphiQL for the mobility API: queries and mutations over HTTP, subscriptions over
// graphql-transport-ws on the same path. Headers typed into the Headers pane (for example
// {"Authorization": "Bearer <token>"}) go with HTTP requests and, as browsers cannot set
// headers on a WebSocket, in the socket's connection_init payload, which the API accepts.
/* global React, ReactDOM, GraphiQL */
(function () {
  "use strict";

  const EXAMPLE_QUERY = `# Vehicles of every operator near Alexanderplatz (the demo city).
# Run with Ctrl-Enter. Subscriptions work here too: try
#   subscription { vehicleUpdates(near: {lat: 52.5219, lon: 13.4132, radiusMeters: 500}, first: 20) { kind } }
{
  vehicles(near: {lat: 52.5219, lon: 13.4132, radiusMeters: 800}, first: 10) {
    id
    formFactor
    distanceMeters
    provider { name }
  }
}
`;

  const params = new URLSearchParams(window.location.search);
  const httpUrl = window.location.origin + window.location.pathname;
  const wsUrl = httpUrl.replace(/^http/, "ws");

  const fetcher = GraphiQL.createFetcher({ url: httpUrl, subscriptionUrl: wsUrl });

  function keepInUrl(name, value) {
    if (value) params.set(name, value);
    else params.delete(name);
    const search = params.toString();
    history.replaceState(null, "", search ? "?" + search : window.location.pathname);
  }

  // The URL's query seeds the editor once; edits are only written back to the URL. Feeding
  // each edit back as a controlled `query` prop made GraphiQL set the editor's value (cursor to
  // the start) after a render that lagged behind fast typing, scrambling the text; the browser
  // test caught it on a loaded CI machine.
  const initialQuery = params.get("query") || EXAMPLE_QUERY;
  const initialVariables = params.get("variables") || undefined;

  function App() {
    return React.createElement(GraphiQL, {
      fetcher,
      defaultQuery: initialQuery,
      query: initialQuery,
      variables: initialVariables,
      defaultEditorToolsVisibility: true,
      shouldPersistHeaders: false,
      onEditQuery(value) {
        keepInUrl("query", value);
      },
      onEditVariables(value) {
        keepInUrl("variables", value);
      },
    });
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(App));
})();
