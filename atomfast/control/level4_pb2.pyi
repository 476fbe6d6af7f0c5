# Generated from atomfast/control/level4.proto by grpcio-tools 1.85.1: do not edit.
# Regenerate with: python -m atomfast.control.generate
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Node(_message.Message):
    __slots__ = ("name", "active_market_count", "max_active_markets")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_MARKET_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_ACTIVE_MARKETS_FIELD_NUMBER: _ClassVar[int]
    name: str
    active_market_count: int
    max_active_markets: int
    def __init__(self, name: _Optional[str] = ..., active_market_count: _Optional[int] = ..., max_active_markets: _Optional[int] = ...) -> None: ...

class Market(_message.Message):
    __slots__ = ("id", "base_symbol", "quote_symbol", "exchange_name", "type")
    ID_FIELD_NUMBER: _ClassVar[int]
    BASE_SYMBOL_FIELD_NUMBER: _ClassVar[int]
    QUOTE_SYMBOL_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    id: int
    base_symbol: str
    quote_symbol: str
    exchange_name: str
    type: str
    def __init__(self, id: _Optional[int] = ..., base_symbol: _Optional[str] = ..., quote_symbol: _Optional[str] = ..., exchange_name: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class StartMarketRequest(_message.Message):
    __slots__ = ("market",)
    MARKET_FIELD_NUMBER: _ClassVar[int]
    market: Market
    def __init__(self, market: _Optional[_Union[Market, _Mapping]] = ...) -> None: ...

class StopMarketRequest(_message.Message):
    __slots__ = ("market",)
    MARKET_FIELD_NUMBER: _ClassVar[int]
    market: Market
    def __init__(self, market: _Optional[_Union[Market, _Mapping]] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListMarketsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MarketOnlineRequest(_message.Message):
    __slots__ = ("market",)
    MARKET_FIELD_NUMBER: _ClassVar[int]
    market: Market
    def __init__(self, market: _Optional[_Union[Market, _Mapping]] = ...) -> None: ...

class StartMarketReply(_message.Message):
    __slots__ = ("market", "node")
    MARKET_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    market: Market
    node: Node
    def __init__(self, market: _Optional[_Union[Market, _Mapping]] = ..., node: _Optional[_Union[Node, _Mapping]] = ...) -> None: ...

class StopMarketReply(_message.Message):
    __slots__ = ("market", "node")
    MARKET_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    market: Market
    node: Node
    def __init__(self, market: _Optional[_Union[Market, _Mapping]] = ..., node: _Optional[_Union[Node, _Mapping]] = ...) -> None: ...

class ListNodesReply(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ...) -> None: ...

class ListMarketsReply(_message.Message):
    __slots__ = ("markets",)
    MARKETS_FIELD_NUMBER: _ClassVar[int]
    markets: _containers.RepeatedCompositeFieldContainer[Market]
    def __init__(self, markets: _Optional[_Iterable[_Union[Market, _Mapping]]] = ...) -> None: ...

class MarketOnlineReply(_message.Message):
    __slots__ = ("is_online",)
    IS_ONLINE_FIELD_NUMBER: _ClassVar[int]
    is_online: bool
    def __init__(self, is_online: _Optional[bool] = ...) -> None: ...
