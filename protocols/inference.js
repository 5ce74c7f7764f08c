import { decodeMessage, encodeMessage, enumeration, message, streamMessage } from 'protons-runtime';
import { alloc as uint8ArrayAlloc } from 'uint8arrays/alloc';
export var InferenceRequest;
(function (InferenceRequest) {
    let Kind;
    (function (Kind) {
        Kind["GENERATE"] = "GENERATE";
        Kind["EMBED"] = "EMBED";
        Kind["RERANK"] = "RERANK";
    })(Kind = InferenceRequest.Kind || (InferenceRequest.Kind = {}));
    let __KindValues;
    (function (__KindValues) {
        __KindValues[__KindValues["GENERATE"] = 0] = "GENERATE";
        __KindValues[__KindValues["EMBED"] = 1] = "EMBED";
        __KindValues[__KindValues["RERANK"] = 2] = "RERANK";
    })(__KindValues || (__KindValues = {}));
    (function (Kind) {
        Kind.codec = () => {
            return enumeration(__KindValues);
        };
    })(Kind = InferenceRequest.Kind || (InferenceRequest.Kind = {}));
    let _codec;
    InferenceRequest.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.kind != null && __KindValues[obj.kind] !== 0) {
                    w.uint32(8);
                    InferenceRequest.Kind.codec().encode(obj.kind, w);
                }
                if ((obj.jobId != null && obj.jobId !== 0n)) {
                    w.uint32(16);
                    w.uint64(obj.jobId);
                }
                if ((obj.modelCid != null && obj.modelCid !== '')) {
                    w.uint32(26);
                    w.string(obj.modelCid);
                }
                if ((obj.modelName != null && obj.modelName !== '')) {
                    w.uint32(34);
                    w.string(obj.modelName);
                }
                if ((obj.body != null && obj.body.byteLength > 0)) {
                    w.uint32(42);
                    w.bytes(obj.body);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    kind: Kind.GENERATE,
                    jobId: 0n,
                    modelCid: '',
                    modelName: '',
                    body: uint8ArrayAlloc(0)
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.kind = InferenceRequest.Kind.codec().decode(reader);
                            break;
                        }
                        case 2: {
                            obj.jobId = reader.uint64();
                            break;
                        }
                        case 3: {
                            obj.modelCid = reader.string();
                            break;
                        }
                        case 4: {
                            obj.modelName = reader.string();
                            break;
                        }
                        case 5: {
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
                                field: `${prefix}.kind`,
                                value: InferenceRequest.Kind.codec().decode(reader)
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.jobId`,
                                value: reader.uint64()
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.modelCid`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.modelName`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 5: {
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
        return encodeMessage(obj, InferenceRequest.codec());
    }
    InferenceRequest.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, InferenceRequest.codec(), opts);
    }
    InferenceRequest.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, InferenceRequest.codec(), opts);
    }
    InferenceRequest.stream = stream;
})(InferenceRequest || (InferenceRequest = {}));
export var InferenceResponse;
(function (InferenceResponse) {
    let Type;
    (function (Type) {
        Type["CHUNK"] = "CHUNK";
        Type["DONE"] = "DONE";
        Type["ERROR"] = "ERROR";
        Type["START"] = "START";
    })(Type = InferenceResponse.Type || (InferenceResponse.Type = {}));
    let __TypeValues;
    (function (__TypeValues) {
        __TypeValues[__TypeValues["CHUNK"] = 0] = "CHUNK";
        __TypeValues[__TypeValues["DONE"] = 1] = "DONE";
        __TypeValues[__TypeValues["ERROR"] = 2] = "ERROR";
        __TypeValues[__TypeValues["START"] = 3] = "START";
    })(__TypeValues || (__TypeValues = {}));
    (function (Type) {
        Type.codec = () => {
            return enumeration(__TypeValues);
        };
    })(Type = InferenceResponse.Type || (InferenceResponse.Type = {}));
    let _codec;
    InferenceResponse.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.type != null && __TypeValues[obj.type] !== 0) {
                    w.uint32(8);
                    InferenceResponse.Type.codec().encode(obj.type, w);
                }
                if ((obj.text != null && obj.text !== '')) {
                    w.uint32(18);
                    w.string(obj.text);
                }
                if ((obj.body != null && obj.body.byteLength > 0)) {
                    w.uint32(26);
                    w.bytes(obj.body);
                }
                if ((obj.errorName != null && obj.errorName !== '')) {
                    w.uint32(34);
                    w.string(obj.errorName);
                }
                if ((obj.errorMessage != null && obj.errorMessage !== '')) {
                    w.uint32(42);
                    w.string(obj.errorMessage);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    type: Type.CHUNK,
                    text: '',
                    body: uint8ArrayAlloc(0),
                    errorName: '',
                    errorMessage: ''
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.type = InferenceResponse.Type.codec().decode(reader);
                            break;
                        }
                        case 2: {
                            obj.text = reader.string();
                            break;
                        }
                        case 3: {
                            obj.body = reader.bytes();
                            break;
                        }
                        case 4: {
                            obj.errorName = reader.string();
                            break;
                        }
                        case 5: {
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
                                field: `${prefix}.type`,
                                value: InferenceResponse.Type.codec().decode(reader)
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.text`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.body`,
                                value: reader.bytes()
                            };
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.errorName`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 5: {
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
        return encodeMessage(obj, InferenceResponse.codec());
    }
    InferenceResponse.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, InferenceResponse.codec(), opts);
    }
    InferenceResponse.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, InferenceResponse.codec(), opts);
    }
    InferenceResponse.stream = stream;
})(InferenceResponse || (InferenceResponse = {}));
