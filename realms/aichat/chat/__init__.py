"""Assistant conversations over the socket (`aichat.conv:<id>`): the namespace, the message
store (seed tables conversations/messages), the reply streams and the frames they send."""
