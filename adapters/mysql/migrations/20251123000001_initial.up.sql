-- The event store: every event of every post, in the order of their global position.
-- position is AUTO_INCREMENT: taken at insert, visible at commit, so positions may show up out
-- of order and with gaps; nothing relies on them being dense.
CREATE TABLE IF NOT EXISTS events (
	position    BIGINT      NOT NULL AUTO_INCREMENT,
	event_id    CHAR(36)    NOT NULL,
	stream_id   CHAR(36)    NOT NULL,
	version     BIGINT      NOT NULL,
	type        VARCHAR(64) NOT NULL,
	data        JSON        NOT NULL,
	metadata    JSON        NOT NULL,
	occurred_at DATETIME(6) NOT NULL,
	PRIMARY KEY (position),
	UNIQUE KEY events_event_id (event_id),
	UNIQUE KEY events_stream_version (stream_id, version)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

--bun:split

-- The transactional outbox: one row per event not yet published, written in the append's
-- transaction and deleted in the transaction that published it.
CREATE TABLE IF NOT EXISTS outbox (
	position  BIGINT   NOT NULL,
	stream_id CHAR(36) NOT NULL,
	version   BIGINT   NOT NULL,
	state     JSON     NOT NULL,
	PRIMARY KEY (position),
	KEY outbox_stream_position (stream_id, position),
	CONSTRAINT outbox_event FOREIGN KEY (position) REFERENCES events (position)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

--bun:split

-- Outcomes of commands sent with an Idempotency-Key, kept until expires_at (24 h after they
-- were stored).
CREATE TABLE IF NOT EXISTS idempotency_keys (
	idempotency_key VARCHAR(255) NOT NULL,
	fingerprint     TEXT         NOT NULL,
	created         BOOL         NOT NULL,
	state           JSON         NOT NULL,
	created_at      DATETIME(6)  NOT NULL,
	expires_at      DATETIME(6)  NOT NULL,
	PRIMARY KEY (idempotency_key),
	KEY idempotency_keys_expires_at (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
