-- Erasure finds what it must redact through indexes on the JSON it redacts: the idempotency
-- records that answer with a post's state, and the posts whose events name an author. Both
-- columns are computed from the document, so redacting the document empties them.
ALTER TABLE idempotency_keys
	ADD COLUMN post_id CHAR(36) AS (JSON_UNQUOTE(JSON_EXTRACT(state, '$.id'))) VIRTUAL,
	ADD KEY idempotency_keys_post_id (post_id);

--bun:split

ALTER TABLE events
	ADD COLUMN author_name VARCHAR(255) AS (JSON_UNQUOTE(JSON_EXTRACT(data, '$.author_name'))) VIRTUAL,
	ADD KEY events_author_name (author_name, stream_id);
