import { decodeMessage, encodeMessage, enumeration, message, streamMessage } from 'protons-runtime';
import { alloc as uint8ArrayAlloc } from 'uint8arrays/alloc';
export var BlockRequest;
(function (BlockRequest) {
    let _codec;
    BlockRequest.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.id != null && obj.id !== 0)) {
                    w.uint32(8);
                    w.uint32(obj.id);
                }
                if ((obj.cid != null && obj.cid.byteLength > 0)) {
                    w.uint32(18);
                    w.bytes(obj.cid);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    id: 0,
                    cid: uint8ArrayAlloc(0)
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.id = reader.uint32();
                            break;
                        }
                        case 2: {
                            obj.cid = reader.bytes();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.id`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.cid`,
                                value: reader.bytes()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, BlockRequest.codec());
    }
    BlockRequest.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, BlockRequest.codec(), opts);
    }
    BlockRequest.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, BlockRequest.codec(), opts);
    }
    BlockRequest.stream = stream;
})(BlockRequest || (BlockRequest = {}));
export var BlockResponse;
(function (BlockResponse) {
    let Status;
    (function (Status) {
        Status["OK"] = "OK";
        Status["MISSING"] = "MISSING";
        Status["TOO_LARGE"] = "TOO_LARGE";
        Status["ERROR"] = "ERROR";
    })(Status = BlockResponse.Status || (BlockResponse.Status = {}));
    let __StatusValues;
    (function (__StatusValues) {
        __StatusValues[__StatusValues["OK"] = 0] = "OK";
        __StatusValues[__StatusValues["MISSING"] = 1] = "MISSING";
        __StatusValues[__StatusValues["TOO_LARGE"] = 2] = "TOO_LARGE";
        __StatusValues[__StatusValues["ERROR"] = 3] = "ERROR";
    })(__StatusValues || (__StatusValues = {}));
    (function (Status) {
        Status.codec = () => {
            return enumeration(__StatusValues);
        };
    })(Status = BlockResponse.Status || (BlockResponse.Status = {}));
    let _codec;
    BlockResponse.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.id != null && obj.id !== 0)) {
                    w.uint32(8);
                    w.uint32(obj.id);
                }
                if (obj.status != null && __StatusValues[obj.status] !== 0) {
                    w.uint32(16);
                    BlockResponse.Status.codec().encode(obj.status, w);
                }
                if ((obj.block != null && obj.block.byteLength > 0)) {
                    w.uint32(26);
                    w.bytes(obj.block);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    id: 0,
                    status: Status.OK,
                    block: uint8ArrayAlloc(0)
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.id = reader.uint32();
                            break;
                        }
                        case 2: {
                            obj.status = BlockResponse.Status.codec().decode(reader);
                            break;
                        }
                        case 3: {
                            obj.block = reader.bytes();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.id`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.status`,
                                value: BlockResponse.Status.codec().decode(reader)
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.block`,
                                value: reader.bytes()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, BlockResponse.codec());
    }
    BlockResponse.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, BlockResponse.codec(), opts);
    }
    BlockResponse.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, BlockResponse.codec(), opts);
    }
    BlockResponse.stream = stream;
})(BlockResponse || (BlockResponse = {}));
export var ChannelOffer;
(function (ChannelOffer) {
    let _codec;
    ChannelOffer.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.port != null && obj.port !== 0)) {
                    w.uint32(8);
                    w.uint32(obj.port);
                }
                if ((obj.token != null && obj.token.byteLength > 0)) {
                    w.uint32(18);
                    w.bytes(obj.token);
                }
                if ((obj.key != null && obj.key.byteLength > 0)) {
                    w.uint32(26);
                    w.bytes(obj.key);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    port: 0,
                    token: uint8ArrayAlloc(0),
                    key: uint8ArrayAlloc(0)
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.port = reader.uint32();
                            break;
                        }
                        case 2: {
                            obj.token = reader.bytes();
                            break;
                        }
                        case 3: {
                            obj.key = reader.bytes();
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
                return obj;
            }, function* (reader, length, prefix, opts = {}) {
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.port`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.token`,
                                value: reader.bytes()
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.key`,
                                value: reader.bytes()
                            };
                            break;
                        }
                        default: {
                            reader.skipType(tag & 7);
                            break;
                        }
                    }
                }
            });
        }
        return _codec;
    };
    function encode(obj) {
        return encodeMessage(obj, ChannelOffer.codec());
    }
    ChannelOffer.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, ChannelOffer.codec(), opts);
    }
    ChannelOffer.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, ChannelOffer.codec(), opts);
    }
    ChannelOffer.stream = stream;
})(ChannelOffer || (ChannelOffer = {}));
