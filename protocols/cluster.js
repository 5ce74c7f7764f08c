import { decodeMessage, encodeMessage, enumeration, message, streamMessage } from 'protons-runtime';
import { alloc as uint8ArrayAlloc } from 'uint8arrays/alloc';
export var ClusterRequest;
(function (ClusterRequest) {
    let Method;
    (function (Method) {
        Method["JOIN"] = "JOIN";
        Method["PIN_STATUS"] = "PIN_STATUS";
        Method["SEARCH"] = "SEARCH";
    })(Method = ClusterRequest.Method || (ClusterRequest.Method = {}));
    let __MethodValues;
    (function (__MethodValues) {
        __MethodValues[__MethodValues["JOIN"] = 0] = "JOIN";
        __MethodValues[__MethodValues["PIN_STATUS"] = 1] = "PIN_STATUS";
        __MethodValues[__MethodValues["SEARCH"] = 2] = "SEARCH";
    })(__MethodValues || (__MethodValues = {}));
    (function (Method) {
        Method.codec = () => {
            return enumeration(__MethodValues);
        };
    })(Method = ClusterRequest.Method || (ClusterRequest.Method = {}));
    let _codec;
    ClusterRequest.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.method != null && __MethodValues[obj.method] !== 0) {
                    w.uint32(8);
                    ClusterRequest.Method.codec().encode(obj.method, w);
                }
                if ((obj.body != null && obj.body.byteLength > 0)) {
                    w.uint32(18);
                    w.bytes(obj.body);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    method: Method.JOIN,
                    body: uint8ArrayAlloc(0)
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.method = ClusterRequest.Method.codec().decode(reader);
                            break;
                        }
                        case 2: {
                            obj.body = reader.bytes();
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
                                field: `${prefix}.method`,
                                value: ClusterRequest.Method.codec().decode(reader)
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.body`,
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
        return encodeMessage(obj, ClusterRequest.codec());
    }
    ClusterRequest.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, ClusterRequest.codec(), opts);
    }
    ClusterRequest.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, ClusterRequest.codec(), opts);
    }
    ClusterRequest.stream = stream;
})(ClusterRequest || (ClusterRequest = {}));
export var ClusterResponse;
(function (ClusterResponse) {
    let _codec;
    ClusterResponse.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.ok != null && obj.ok !== false)) {
                    w.uint32(8);
                    w.bool(obj.ok);
                }
                if ((obj.body != null && obj.body.byteLength > 0)) {
                    w.uint32(18);
                    w.bytes(obj.body);
                }
                if ((obj.errorName != null && obj.errorName !== '')) {
                    w.uint32(26);
                    w.string(obj.errorName);
                }
                if ((obj.errorMessage != null && obj.errorMessage !== '')) {
                    w.uint32(34);
                    w.string(obj.errorMessage);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    ok: false,
                    body: uint8ArrayAlloc(0),
                    errorName: '',
                    errorMessage: ''
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.ok = reader.bool();
                            break;
                        }
                        case 2: {
                            obj.body = reader.bytes();
                            break;
                        }
                        case 3: {
                            obj.errorName = reader.string();
                            break;
                        }
                        case 4: {
                            obj.errorMessage = reader.string();
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
                                field: `${prefix}.ok`,
                                value: reader.bool()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.body`,
                                value: reader.bytes()
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.errorName`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.errorMessage`,
                                value: reader.string()
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
        return encodeMessage(obj, ClusterResponse.codec());
    }
    ClusterResponse.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, ClusterResponse.codec(), opts);
    }
    ClusterResponse.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, ClusterResponse.codec(), opts);
    }
    ClusterResponse.stream = stream;
})(ClusterResponse || (ClusterResponse = {}));
