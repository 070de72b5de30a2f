"""The platform: what every domain stands on and none of them owns. Database sessions
(``db``), Redis (``redis``, ``redis_pipelined``), settings per concern (``settings/``), sealed
secrets (``secret_box``), mail (``mail``, ``smtp_url``), outbound HTTP to addresses a client
names (``outbound``), the HTTP edge's limits (``edge``), logging (``logs``), background loops
(``background``), migrations (``migrate``), advisory-lock keys shared by booking, sync and push
(``advisory_locks``), the errors with stable codes (``errors``) and small shared vocabularies
(``vocabulary``, ``names``, ``email_address``).

Nothing here imports a domain package (search, booking, fleet, accounts, live updates, GBFS
publishing) nor the interfaces (tests/test_layers.py checks it).
"""
