-- 0.2 to 0.3: the fleet (this server as an edge, see 20_catalog.sql).
CREATE TABLE owsync.edge (
    edge          text PRIMARY KEY CHECK (edge ~ '^[a-z_][a-z0-9_]*$' AND length(edge) <= 40),
    one_row       boolean NOT NULL DEFAULT true UNIQUE CHECK (one_row),
    prepared_at   timestamptz NOT NULL DEFAULT now(),
    hub           text,				-- the hub's host, port and database (NULL: not attached)
    edge_conninfo text,				-- how the hub reaches this database (no user, no password)
    edge_no       integer,			-- given by the hub: run ids from edge_no * 10^12 on
    attached_at   timestamptz,
    last_tick     timestamptz,		-- the fleet tick's last visit of the hub
    problem       text,				-- why the last tick could not bring the hub up to date (NULL: it did)
    contested     text[] NOT NULL DEFAULT '{}',	-- clients whose names other edges hold: not published
    slot_lost_alerted boolean NOT NULL DEFAULT false
);
SELECT pg_catalog.pg_extension_config_dump('owsync.edge', '');
