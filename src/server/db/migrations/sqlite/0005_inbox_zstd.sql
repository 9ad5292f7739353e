-- A queued push's entries, zstd-compressed by the request's own task before the push waits
-- for the one writer: a fifth of the bytes for the receiving transaction to write (and, on
-- PostgreSQL, nothing for it to compress). New rows leave `entries` empty; rows queued
-- before this migration keep theirs there.
ALTER TABLE push_inbox ADD COLUMN entries_zstd BLOB;
