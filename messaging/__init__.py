"""The Kafka edge: client options, the error hierarchy, topic administration and the one
producer of a process, shared by the producers, the consumers and the local stack.

Nothing connects at import; open a :class:`messaging.publisher.KafkaPublisher` from a
process's start-up (the composition root, ``app``).
"""
