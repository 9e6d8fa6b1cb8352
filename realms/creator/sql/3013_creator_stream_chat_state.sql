-- Stream chat switched on or off (creator.live_streams.chat_enabled): every gateway forgets the
-- state it keeps for the stream's room (sb_membership notice `creator_stream_chat`, read by
-- realms/creator/live.py), then tells the room (`event {kind: server, name: "chat",
-- data: {enabled}}`). Both NOTIFYs are sent at commit, in this order, on the channels every
-- gateway listens to on one connection: a viewer who sees the event is refused at once.
CREATE FUNCTION creator.announce_stream_chat() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sb_membership', json_build_object(
        'kind', 'creator_stream_chat', 'stream_id', NEW.id)::text);
    PERFORM pg_notify('sb_server', json_build_object(
        'op', 'publish', 'channel', 'creator.live:' || NEW.id, 'name', 'chat',
        'data', json_build_object('enabled', NEW.chat_enabled))::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_live_streams_announce_chat
    AFTER UPDATE OF chat_enabled ON creator.live_streams
    FOR EACH ROW WHEN (OLD.chat_enabled IS DISTINCT FROM NEW.chat_enabled)
    EXECUTE FUNCTION creator.announce_stream_chat();
