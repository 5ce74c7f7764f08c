import { decodeMessage, encodeMessage, enumeration, MaxLengthError, message, streamMessage } from 'protons-runtime';
import { alloc as uint8ArrayAlloc } from 'uint8arrays/alloc';
export var RaftMessage;
(function (RaftMessage) {
    let Type;
    (function (Type) {
        Type["MSG_HUP"] = "MSG_HUP";
        Type["MSG_BEAT"] = "MSG_BEAT";
        Type["MSG_PROP"] = "MSG_PROP";
        Type["MSG_APP"] = "MSG_APP";
        Type["MSG_APP_RESP"] = "MSG_APP_RESP";
        Type["MSG_VOTE"] = "MSG_VOTE";
        Type["MSG_VOTE_RESP"] = "MSG_VOTE_RESP";
        Type["MSG_SNAP"] = "MSG_SNAP";
        Type["MSG_HEARTBEAT"] = "MSG_HEARTBEAT";
        Type["MSG_HEARTBEAT_RESP"] = "MSG_HEARTBEAT_RESP";
        Type["MSG_UNREACHABLE"] = "MSG_UNREACHABLE";
        Type["MSG_SNAP_STATUS"] = "MSG_SNAP_STATUS";
        Type["MSG_CHECK_QUORUM"] = "MSG_CHECK_QUORUM";
        Type["MSG_TRANSFER_LEADER"] = "MSG_TRANSFER_LEADER";
        Type["MSG_TIMEOUT_NOW"] = "MSG_TIMEOUT_NOW";
        Type["MSG_READ_INDEX"] = "MSG_READ_INDEX";
        Type["MSG_READ_INDEX_RESP"] = "MSG_READ_INDEX_RESP";
        Type["MSG_PRE_VOTE"] = "MSG_PRE_VOTE";
        Type["MSG_PRE_VOTE_RESP"] = "MSG_PRE_VOTE_RESP";
    })(Type = RaftMessage.Type || (RaftMessage.Type = {}));
    let __TypeValues;
    (function (__TypeValues) {
        __TypeValues[__TypeValues["MSG_HUP"] = 0] = "MSG_HUP";
        __TypeValues[__TypeValues["MSG_BEAT"] = 1] = "MSG_BEAT";
        __TypeValues[__TypeValues["MSG_PROP"] = 2] = "MSG_PROP";
        __TypeValues[__TypeValues["MSG_APP"] = 3] = "MSG_APP";
        __TypeValues[__TypeValues["MSG_APP_RESP"] = 4] = "MSG_APP_RESP";
        __TypeValues[__TypeValues["MSG_VOTE"] = 5] = "MSG_VOTE";
        __TypeValues[__TypeValues["MSG_VOTE_RESP"] = 6] = "MSG_VOTE_RESP";
        __TypeValues[__TypeValues["MSG_SNAP"] = 7] = "MSG_SNAP";
        __TypeValues[__TypeValues["MSG_HEARTBEAT"] = 8] = "MSG_HEARTBEAT";
        __TypeValues[__TypeValues["MSG_HEARTBEAT_RESP"] = 9] = "MSG_HEARTBEAT_RESP";
        __TypeValues[__TypeValues["MSG_UNREACHABLE"] = 10] = "MSG_UNREACHABLE";
        __TypeValues[__TypeValues["MSG_SNAP_STATUS"] = 11] = "MSG_SNAP_STATUS";
        __TypeValues[__TypeValues["MSG_CHECK_QUORUM"] = 12] = "MSG_CHECK_QUORUM";
        __TypeValues[__TypeValues["MSG_TRANSFER_LEADER"] = 13] = "MSG_TRANSFER_LEADER";
        __TypeValues[__TypeValues["MSG_TIMEOUT_NOW"] = 14] = "MSG_TIMEOUT_NOW";
        __TypeValues[__TypeValues["MSG_READ_INDEX"] = 15] = "MSG_READ_INDEX";
        __TypeValues[__TypeValues["MSG_READ_INDEX_RESP"] = 16] = "MSG_READ_INDEX_RESP";
        __TypeValues[__TypeValues["MSG_PRE_VOTE"] = 17] = "MSG_PRE_VOTE";
        __TypeValues[__TypeValues["MSG_PRE_VOTE_RESP"] = 18] = "MSG_PRE_VOTE_RESP";
    })(__TypeValues || (__TypeValues = {}));
    (function (Type) {
        Type.codec = () => {
            return enumeration(__TypeValues);
        };
    })(Type = RaftMessage.Type || (RaftMessage.Type = {}));
    let _codec;
    RaftMessage.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.type != null && __TypeValues[obj.type] !== 0) {
                    w.uint32(8);
                    RaftMessage.Type.codec().encode(obj.type, w);
                }
                if ((obj.to != null && obj.to !== '')) {
                    w.uint32(18);
                    w.string(obj.to);
                }
                if ((obj.from != null && obj.from !== '')) {
                    w.uint32(26);
                    w.string(obj.from);
                }
                if ((obj.term != null && obj.term !== 0)) {
                    w.uint32(32);
                    w.uint64Number(obj.term);
                }
                if ((obj.logTerm != null && obj.logTerm !== 0)) {
                    w.uint32(40);
                    w.uint64Number(obj.logTerm);
                }
                if ((obj.index != null && obj.index !== 0)) {
                    w.uint32(48);
                    w.uint64Number(obj.index);
                }
                if (obj.entries != null && obj.entries.length > 0) {
                    for (const value of obj.entries) {
                        w.uint32(58);
                        RaftEntry.codec().encode(value, w);
                    }
                }
                if ((obj.commit != null && obj.commit !== 0)) {
                    w.uint32(64);
                    w.uint64Number(obj.commit);
                }
                if (obj.snapshot != null) {
                    w.uint32(74);
                    RaftSnapshot.codec().encode(obj.snapshot, w);
                }
                if ((obj.reject != null && obj.reject !== false)) {
                    w.uint32(80);
                    w.bool(obj.reject);
                }
                if ((obj.rejectHint != null && obj.rejectHint !== 0)) {
                    w.uint32(88);
                    w.uint64Number(obj.rejectHint);
                }
                if (obj.context != null) {
                    w.uint32(98);
                    w.bytes(obj.context);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    type: Type.MSG_HUP,
                    to: '',
                    from: '',
                    term: 0,
                    logTerm: 0,
                    index: 0,
                    entries: [],
                    commit: 0,
                    reject: false,
                    rejectHint: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.type = RaftMessage.Type.codec().decode(reader);
                            break;
                        }
                        case 2: {
                            obj.to = reader.string();
                            break;
                        }
                        case 3: {
                            obj.from = reader.string();
                            break;
                        }
                        case 4: {
                            obj.term = reader.uint64Number();
                            break;
                        }
                        case 5: {
                            obj.logTerm = reader.uint64Number();
                            break;
                        }
                        case 6: {
                            obj.index = reader.uint64Number();
                            break;
                        }
                        case 7: {
                            if (opts.limits?.entries != null && obj.entries.length === opts.limits.entries) {
                                throw new MaxLengthError('Decode error - repeated field "entries" had too many elements');
                            }
                            obj.entries.push(RaftEntry.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.entries$
                            }));
                            break;
                        }
                        case 8: {
                            obj.commit = reader.uint64Number();
                            break;
                        }
                        case 9: {
                            obj.snapshot = RaftSnapshot.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.snapshot
                            });
                            break;
                        }
                        case 10: {
                            obj.reject = reader.bool();
                            break;
                        }
                        case 11: {
                            obj.rejectHint = reader.uint64Number();
                            break;
                        }
                        case 12: {
                            obj.context = reader.bytes();
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
                    entries: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            yield {
                                field: `${prefix}.type`,
                                value: RaftMessage.Type.codec().decode(reader)
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.to`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.from`,
                                value: reader.string()
                            };
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.term`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        case 5: {
                            yield {
                                field: `${prefix}.logTerm`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        case 6: {
                            yield {
                                field: `${prefix}.index`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        case 7: {
                            if (opts.limits?.entries != null && obj.entries === opts.limits.entries) {
                                throw new MaxLengthError('Streaming decode error - repeated field "entries" had too many elements');
                            }
                            for (const evt of RaftEntry.codec().stream(reader, reader.uint32(), `${prefix}.entries[]`, {
                                limits: opts.limits?.entries$
                            })) {
                                yield {
                                    ...evt,
                                    index: obj.entries
                                };
                            }
                            obj.entries++;
                            break;
                        }
                        case 8: {
                            yield {
                                field: `${prefix}.commit`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        case 9: {
                            yield* RaftSnapshot.codec().stream(reader, reader.uint32(), `${prefix}.snapshot`, {
                                limits: opts.limits?.snapshot
                            });
                            break;
                        }
                        case 10: {
                            yield {
                                field: `${prefix}.reject`,
                                value: reader.bool()
                            };
                            break;
                        }
                        case 11: {
                            yield {
                                field: `${prefix}.rejectHint`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        case 12: {
                            yield {
                                field: `${prefix}.context`,
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
        return encodeMessage(obj, RaftMessage.codec());
    }
    RaftMessage.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, RaftMessage.codec(), opts);
    }
    RaftMessage.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, RaftMessage.codec(), opts);
    }
    RaftMessage.stream = stream;
})(RaftMessage || (RaftMessage = {}));
export var RaftEntry;
(function (RaftEntry) {
    let Type;
    (function (Type) {
        Type["NORMAL"] = "NORMAL";
        Type["CONF_CHANGE"] = "CONF_CHANGE";
    })(Type = RaftEntry.Type || (RaftEntry.Type = {}));
    let __TypeValues;
    (function (__TypeValues) {
        __TypeValues[__TypeValues["NORMAL"] = 0] = "NORMAL";
        __TypeValues[__TypeValues["CONF_CHANGE"] = 1] = "CONF_CHANGE";
    })(__TypeValues || (__TypeValues = {}));
    (function (Type) {
        Type.codec = () => {
            return enumeration(__TypeValues);
        };
    })(Type = RaftEntry.Type || (RaftEntry.Type = {}));
    let _codec;
    RaftEntry.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.term != null && obj.term !== 0)) {
                    w.uint32(8);
                    w.uint64Number(obj.term);
                }
                if ((obj.index != null && obj.index !== 0)) {
                    w.uint32(16);
                    w.uint64Number(obj.index);
                }
                if (obj.type != null && __TypeValues[obj.type] !== 0) {
                    w.uint32(24);
                    RaftEntry.Type.codec().encode(obj.type, w);
                }
                if ((obj.data != null && obj.data.byteLength > 0)) {
                    w.uint32(34);
                    w.bytes(obj.data);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    term: 0,
                    index: 0,
                    type: Type.NORMAL,
                    data: uint8ArrayAlloc(0)
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.term = reader.uint64Number();
                            break;
                        }
                        case 2: {
                            obj.index = reader.uint64Number();
                            break;
                        }
                        case 3: {
                            obj.type = RaftEntry.Type.codec().decode(reader);
                            break;
                        }
                        case 4: {
                            obj.data = reader.bytes();
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
                                field: `${prefix}.term`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.index`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        case 3: {
                            yield {
                                field: `${prefix}.type`,
                                value: RaftEntry.Type.codec().decode(reader)
                            };
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.data`,
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
        return encodeMessage(obj, RaftEntry.codec());
    }
    RaftEntry.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, RaftEntry.codec(), opts);
    }
    RaftEntry.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, RaftEntry.codec(), opts);
    }
    RaftEntry.stream = stream;
})(RaftEntry || (RaftEntry = {}));
export var RaftConfState;
(function (RaftConfState) {
    let _codec;
    RaftConfState.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if (obj.voters != null && obj.voters.length > 0) {
                    for (const value of obj.voters) {
                        w.uint32(10);
                        w.string(value);
                    }
                }
                if (obj.learners != null && obj.learners.length > 0) {
                    for (const value of obj.learners) {
                        w.uint32(18);
                        w.string(value);
                    }
                }
                if (obj.votersOutgoing != null && obj.votersOutgoing.length > 0) {
                    for (const value of obj.votersOutgoing) {
                        w.uint32(26);
                        w.string(value);
                    }
                }
                if (obj.learnersNext != null && obj.learnersNext.length > 0) {
                    for (const value of obj.learnersNext) {
                        w.uint32(34);
                        w.string(value);
                    }
                }
                if ((obj.autoLeave != null && obj.autoLeave !== false)) {
                    w.uint32(40);
                    w.bool(obj.autoLeave);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    voters: [],
                    learners: [],
                    votersOutgoing: [],
                    learnersNext: [],
                    autoLeave: false
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            if (opts.limits?.voters != null && obj.voters.length === opts.limits.voters) {
                                throw new MaxLengthError('Decode error - repeated field "voters" had too many elements');
                            }
                            obj.voters.push(reader.string());
                            break;
                        }
                        case 2: {
                            if (opts.limits?.learners != null && obj.learners.length === opts.limits.learners) {
                                throw new MaxLengthError('Decode error - repeated field "learners" had too many elements');
                            }
                            obj.learners.push(reader.string());
                            break;
                        }
                        case 3: {
                            if (opts.limits?.votersOutgoing != null && obj.votersOutgoing.length === opts.limits.votersOutgoing) {
                                throw new MaxLengthError('Decode error - repeated field "votersOutgoing" had too many elements');
                            }
                            obj.votersOutgoing.push(reader.string());
                            break;
                        }
                        case 4: {
                            if (opts.limits?.learnersNext != null && obj.learnersNext.length === opts.limits.learnersNext) {
                                throw new MaxLengthError('Decode error - repeated field "learnersNext" had too many elements');
                            }
                            obj.learnersNext.push(reader.string());
                            break;
                        }
                        case 5: {
                            obj.autoLeave = reader.bool();
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
                    voters: 0,
                    learners: 0,
                    votersOutgoing: 0,
                    learnersNext: 0
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            if (opts.limits?.voters != null && obj.voters === opts.limits.voters) {
                                throw new MaxLengthError('Streaming decode error - repeated field "voters" had too many elements');
                            }
                            yield {
                                field: `${prefix}.voters[]`,
                                index: obj.voters,
                                value: reader.string()
                            };
                            obj.voters++;
                            break;
                        }
                        case 2: {
                            if (opts.limits?.learners != null && obj.learners === opts.limits.learners) {
                                throw new MaxLengthError('Streaming decode error - repeated field "learners" had too many elements');
                            }
                            yield {
                                field: `${prefix}.learners[]`,
                                index: obj.learners,
                                value: reader.string()
                            };
                            obj.learners++;
                            break;
                        }
                        case 3: {
                            if (opts.limits?.votersOutgoing != null && obj.votersOutgoing === opts.limits.votersOutgoing) {
                                throw new MaxLengthError('Streaming decode error - repeated field "votersOutgoing" had too many elements');
                            }
                            yield {
                                field: `${prefix}.votersOutgoing[]`,
                                index: obj.votersOutgoing,
                                value: reader.string()
                            };
                            obj.votersOutgoing++;
                            break;
                        }
                        case 4: {
                            if (opts.limits?.learnersNext != null && obj.learnersNext === opts.limits.learnersNext) {
                                throw new MaxLengthError('Streaming decode error - repeated field "learnersNext" had too many elements');
                            }
                            yield {
                                field: `${prefix}.learnersNext[]`,
                                index: obj.learnersNext,
                                value: reader.string()
                            };
                            obj.learnersNext++;
                            break;
                        }
                        case 5: {
                            yield {
                                field: `${prefix}.autoLeave`,
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
        return encodeMessage(obj, RaftConfState.codec());
    }
    RaftConfState.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, RaftConfState.codec(), opts);
    }
    RaftConfState.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, RaftConfState.codec(), opts);
    }
    RaftConfState.stream = stream;
})(RaftConfState || (RaftConfState = {}));
export var RaftSnapshot;
(function (RaftSnapshot) {
    let _codec;
    RaftSnapshot.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.index != null && obj.index !== 0)) {
                    w.uint32(8);
                    w.uint64Number(obj.index);
                }
                if ((obj.term != null && obj.term !== 0)) {
                    w.uint32(16);
                    w.uint64Number(obj.term);
                }
                if (obj.confState != null) {
                    w.uint32(26);
                    RaftConfState.codec().encode(obj.confState, w);
                }
                if ((obj.data != null && obj.data.byteLength > 0)) {
                    w.uint32(34);
                    w.bytes(obj.data);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    index: 0,
                    term: 0,
                    data: uint8ArrayAlloc(0)
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.index = reader.uint64Number();
                            break;
                        }
                        case 2: {
                            obj.term = reader.uint64Number();
                            break;
                        }
                        case 3: {
                            obj.confState = RaftConfState.codec().decode(reader, reader.uint32(), {
                                limits: opts.limits?.confState
                            });
                            break;
                        }
                        case 4: {
                            obj.data = reader.bytes();
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
                                field: `${prefix}.index`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.term`,
                                value: reader.uint64Number()
                            };
                            break;
                        }
                        case 3: {
                            yield* RaftConfState.codec().stream(reader, reader.uint32(), `${prefix}.confState`, {
                                limits: opts.limits?.confState
                            });
                            break;
                        }
                        case 4: {
                            yield {
                                field: `${prefix}.data`,
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
        return encodeMessage(obj, RaftSnapshot.codec());
    }
    RaftSnapshot.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, RaftSnapshot.codec(), opts);
    }
    RaftSnapshot.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, RaftSnapshot.codec(), opts);
    }
    RaftSnapshot.stream = stream;
})(RaftSnapshot || (RaftSnapshot = {}));
export var RaftProposal;
(function (RaftProposal) {
    let _codec;
    RaftProposal.codec = () => {
        if (_codec == null) {
            _codec = message((obj, w, opts = {}) => {
                if (opts.lengthDelimited !== false) {
                    w.fork();
                }
                if ((obj.id != null && obj.id.byteLength > 0)) {
                    w.uint32(10);
                    w.bytes(obj.id);
                }
                if ((obj.command != null && obj.command.byteLength > 0)) {
                    w.uint32(18);
                    w.bytes(obj.command);
                }
                if (opts.lengthDelimited !== false) {
                    w.ldelim();
                }
            }, (reader, length, opts = {}) => {
                const obj = {
                    id: uint8ArrayAlloc(0),
                    command: uint8ArrayAlloc(0)
                };
                const end = length == null ? reader.len : reader.pos + length;
                while (reader.pos < end) {
                    const tag = reader.uint32();
                    switch (tag >>> 3) {
                        case 1: {
                            obj.id = reader.bytes();
                            break;
                        }
                        case 2: {
                            obj.command = reader.bytes();
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
                                value: reader.bytes()
                            };
                            break;
                        }
                        case 2: {
                            yield {
                                field: `${prefix}.command`,
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
        return encodeMessage(obj, RaftProposal.codec());
    }
    RaftProposal.encode = encode;
    function decode(buf, opts) {
        return decodeMessage(buf, RaftProposal.codec(), opts);
    }
    RaftProposal.decode = decode;
    function stream(buf, opts) {
        return streamMessage(buf, RaftProposal.codec(), opts);
    }
    RaftProposal.stream = stream;
})(RaftProposal || (RaftProposal = {}));
