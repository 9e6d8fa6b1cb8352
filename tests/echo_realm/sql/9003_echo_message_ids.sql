-- Echo room messages are named by BIGINT ids, as a realm whose seed keys its messages so
-- (market) names them: the test realm exercises the protocol's integer message references
-- next to the core's UUID-named conversations. A reply names a message of the same room.
ALTER TABLE echo.messages DROP COLUMN id;
ALTER TABLE echo.messages ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;
ALTER TABLE echo.messages ADD COLUMN reply_to bigint;
ALTER TABLE echo.messages ADD CONSTRAINT echo_messages_id_room_key UNIQUE (id, room_id);
ALTER TABLE echo.messages ADD CONSTRAINT echo_messages_reply_in_room
    FOREIGN KEY (reply_to, room_id) REFERENCES echo.messages (id, room_id)
    ON DELETE SET NULL (reply_to);
