import { decodeMessage, encodeMessage, enumeration, MaxLengthError, message, streamMessage } from 'protons-runtime';
import { alloc as uint8ArrayAlloc } from 'uint8arrays/alloc';
export var StepRequest;
(function (StepRequest) {
    let _codec;
    StepRequest.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.jobId != null && obj.jobId !== 0n)) {
                    w.uint32(8);
                    w.uint64(obj.jobId);
                }
                if ((obj.round != null && obj.round !== 0n)) {
                    w.uint32(16);
                    w.uint64(obj.round);
                }
                if ((obj.syncCid != null && obj.syncCid !== '')) {
                    w.uint32(26);
                    w.string(obj.syncCid);
                }
                if ((obj.update != null && obj.update.byteLength > 0)) {
                    w.uint32(34);
                    w.bytes(obj.update);
                }
                if ((obj.version != null && obj.version !== 0n)) {
                    w.uint32(40);
                    w.uint64(obj.version);
                }
                if (obj.samples != null && obj.samples.length > 0) {
                    for (const value of obj.samples) {
                        w.uint32(48);
                        w.uint32(value);
                    }
                }
                if ((obj.client != null && obj.client !== '')) {
                    w.uint32(58);
                    w.string(obj.client);
                }
                if ((obj.peerCount != null && obj.peerCount !== 0)) {
                    w.uint32(64);
                    w.uint32(obj.peerCount);
                }
                if ((obj.peerFirst != null && obj.peerFirst !== false)) {
                    w.uint32(72);
                    w.bool(obj.peerFirst);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    jobId: 0n,
                    round: 0n,
                    syncCid: '',
                    update: uint8ArrayAlloc(0),
                    version: 0n,
                    samples: [],
                    client: '',
                    peerCount: 0,
                    peerFirst: false
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.jobId = reader.uint64();
                            break;
                        }
                        case 2: {
                            obj.round = reader.uint64();
                            break;
                        }
                        case 3: {
                            obj.syncCid = reader.string();
                            break;
                        }
                        case 4: {
                            obj.update = reader.bytes();
                            break;
                        }
                        case 5: {
                            obj.version = reader.uint64();
                            break;
                        }
                        case 6: {
                            if (opts.limits?.samples != null && obj.samples.length === opts.limits.samples) {
                                throw new MaxLengthError('Decode error - repeated field "samples" had too many elements');
                            }
                            obj.samples.push(reader.uint32());
                            break;
                        }
                        case 7: {
                            obj.client = reader.string();
                            break;
                        }
                        case 8: {
                            obj.peerCount = reader.uint32();
                            break;
                        }
                        case 9: {
                            obj.peerFirst = reader.bool();
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
                const obj = {
                    samples: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.jobId`,
                                value: reader.uint64()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.round`,
                                value: reader.uint64()
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.syncCid`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.update`,
                                value: reader.bytes()
                            };
                            break;
                        }
                        case 5: {
                            yield {
                                field: `${prefix}.version`,
                                value: reader.uint64()
                            };
                            break;
                        }
                        case 6: {
                            if (opts.limits?.samples != null && obj.samples === opts.limits.samples) {
                                throw new MaxLengthError('Streaming decode error - repeated field "samples" had too many elements');
                            }
                            yield {
                                field: `${prefix}.samples[]`,
                                index: obj.samples,
                                value: reader.uint32()
                            };
                            obj.samples++;
                            break;
                        }
                        case 7: {
                            yield {
                                field: `${prefix}.client`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 8: {
                            yield {
                                field: `${prefix}.peerCount`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 9: {
                            yield {
                                field: `${prefix}.peerFirst`,
                                value: reader.bool()
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
        return encodeMessage(obj, StepRequest.codec());
    }
    StepRequest.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, StepRequest.codec(), opts);
    }
    StepRequest.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, StepRequest.codec(), opts);
    }
    StepRequest.stream = stream;
})(StepRequest || (StepRequest = {}));
export var StepResponse;
(function (StepResponse) {
    let Status;
    (function (Status) {
        Status["OK"] = "OK";
        Status["OUT_OF_SYNC"] = "OUT_OF_SYNC";
        Status["ERROR"] = "ERROR";
    })(Status = StepResponse.Status || (StepResponse.Status = {}));
    let __StatusValues;
    (function (__StatusValues) {
        __StatusValues[__StatusValues["OK"] = 0] = "OK";
        __StatusValues[__StatusValues["OUT_OF_SYNC"] = 1] = "OUT_OF_SYNC";
        __StatusValues[__StatusValues["ERROR"] = 2] = "ERROR";
    })(__StatusValues || (__StatusValues = {}));
    (function (Status) {
        Status.codec = () => {
            return enumeration(__StatusValues);
        };
    })(Status = StepResponse.Status || (StepResponse.Status = {}));
    let _codec;
    StepResponse.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.status != null && __StatusValues[obj.status] !== 0) {
                    w.uint32(8);
                    StepResponse.Status.codec().encode(obj.status, w);
                }
                if ((obj.round != null && obj.round !== 0n)) {
                    w.uint32(16);
                    w.uint64(obj.round);
                }
                if ((obj.gradient != null && obj.gradient.byteLength > 0)) {
                    w.uint32(26);
                    w.bytes(obj.gradient);
                }
                if ((obj.count != null && obj.count !== 0)) {
                    w.uint32(32);
                    w.uint32(obj.count);
                }
                if ((obj.lossSum != null && obj.lossSum !== 0)) {
                    w.uint32(41);
                    w.double(obj.lossSum);
                }
                if ((obj.correct != null && obj.correct !== 0)) {
                    w.uint32(49);
                    w.double(obj.correct);
                }
                if ((obj.labels != null && obj.labels !== 0)) {
                    w.uint32(57);
                    w.double(obj.labels);
                }
                if ((obj.computeMs != null && obj.computeMs !== 0)) {
                    w.uint32(65);
                    w.double(obj.computeMs);
                }
                if ((obj.errorName != null && obj.errorName !== '')) {
                    w.uint32(74);
                    w.string(obj.errorName);
                }
                if ((obj.errorMessage != null && obj.errorMessage !== '')) {
                    w.uint32(82);
                    w.string(obj.errorMessage);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    status: Status.OK,
                    round: 0n,
                    gradient: uint8ArrayAlloc(0),
                    count: 0,
                    lossSum: 0,
                    correct: 0,
                    labels: 0,
                    computeMs: 0,
                    errorName: '',
                    errorMessage: ''
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.status = StepResponse.Status.codec().decode(reader);
                            break;
                        }
                        case 2: {
                            obj.round = reader.uint64();
                            break;
                        }
                        case 3: {
                            obj.gradient = reader.bytes();
                            break;
                        }
                        case 4: {
                            obj.count = reader.uint32();
                            break;
                        }
                        case 5: {
                            obj.lossSum = reader.double();
                            break;
                        }
                        case 6: {
                            obj.correct = reader.double();
                            break;
                        }
                        case 7: {
                            obj.labels = reader.double();
                            break;
                        }
                        case 8: {
                            obj.computeMs = reader.double();
                            break;
                        }
                        case 9: {
                            obj.errorName = reader.string();
                            break;
                        }
                        case 10: {
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
                                field: `${prefix}.status`,
                                value: StepResponse.Status.codec().decode(reader)
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.round`,
                                value: reader.uint64()
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.gradient`,
                                value: reader.bytes()
                            };
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.count`,
                                value: reader.uint32()
                            };
                            break;
                        }
                        case 5: {
                            yield {
                                field: `${prefix}.lossSum`,
                                value: reader.double()
                            };
                            break;
                        }
                        case 6: {
                            yield {
                                field: `${prefix}.correct`,
                                value: reader.double()
                            };
                            break;
                        }
                        case 7: {
                            yield {
                                field: `${prefix}.labels`,
                                value: reader.double()
                            };
                            break;
                        }
                        case 8: {
                            yield {
                                field: `${prefix}.computeMs`,
                                value: reader.double()
                            };
                            break;
                        }
                        case 9: {
                            yield {
                                field: `${prefix}.errorName`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 10: {
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
        return encodeMessage(obj, StepResponse.codec());
    }
    StepResponse.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, StepResponse.codec(), opts);
    }
    StepResponse.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, StepResponse.codec(), opts);
    }
    StepResponse.stream = stream;
})(StepResponse || (StepResponse = {}));
