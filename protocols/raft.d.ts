import type { Codec, DecodeOptions } from 'protons-runtime';
import type { Uint8ArrayList } from 'uint8arraylist';
export interface RaftMessage {
    type: RaftMessage.Type;
    to: string;
    from: string;
    term: number;
    logTerm: number;
    index: number;
    entries: RaftEntry[];
    commit: number;
    snapshot?: RaftSnapshot;
    reject: boolean;
    rejectHint: number;
    context?: Uint8Array<ArrayBuffer>;
}
export declare namespace RaftMessage {
    enum Type {
        MSG_HUP = "MSG_HUP",
        MSG_BEAT = "MSG_BEAT",
        MSG_PROP = "MSG_PROP",
        MSG_APP = "MSG_APP",
        MSG_APP_RESP = "MSG_APP_RESP",
        MSG_VOTE = "MSG_VOTE",
        MSG_VOTE_RESP = "MSG_VOTE_RESP",
        MSG_SNAP = "MSG_SNAP",
        MSG_HEARTBEAT = "MSG_HEARTBEAT",
        MSG_HEARTBEAT_RESP = "MSG_HEARTBEAT_RESP",
        MSG_UNREACHABLE = "MSG_UNREACHABLE",
        MSG_SNAP_STATUS = "MSG_SNAP_STATUS",
        MSG_CHECK_QUORUM = "MSG_CHECK_QUORUM",
        MSG_TRANSFER_LEADER = "MSG_TRANSFER_LEADER",
        MSG_TIMEOUT_NOW = "MSG_TIMEOUT_NOW",
        MSG_READ_INDEX = "MSG_READ_INDEX",
        MSG_READ_INDEX_RESP = "MSG_READ_INDEX_RESP",
        MSG_PRE_VOTE = "MSG_PRE_VOTE",
        MSG_PRE_VOTE_RESP = "MSG_PRE_VOTE_RESP"
    }
    namespace Type {
        const codec: () => Codec<Type>;
    }
    const codec: () => Codec<RaftMessage>;
    interface RaftMessageTypeFieldEvent {
        field: '$.type';
        value: RaftMessage.Type;
    }
    interface RaftMessageToFieldEvent {
        field: '$.to';
        value: string;
    }
    interface RaftMessageFromFieldEvent {
        field: '$.from';
        value: string;
    }
    interface RaftMessageTermFieldEvent {
        field: '$.term';
        value: number;
    }
    interface RaftMessageLogTermFieldEvent {
        field: '$.logTerm';
        value: number;
    }
    interface RaftMessageIndexFieldEvent {
        field: '$.index';
        value: number;
    }
    interface RaftMessageEntriesTermFieldEvent {
        field: '$.entries[].term';
        value: number;
        index: number;
    }
    interface RaftMessageEntriesIndexFieldEvent {
        field: '$.entries[].index';
        value: number;
        index: number;
    }
    interface RaftMessageEntriesTypeFieldEvent {
        field: '$.entries[].type';
        value: RaftEntry.Type;
        index: number;
    }
    interface RaftMessageEntriesDataFieldEvent {
        field: '$.entries[].data';
        value: Uint8Array<ArrayBuffer>;
        index: number;
    }
    interface RaftMessageCommitFieldEvent {
        field: '$.commit';
        value: number;
    }
    interface RaftMessageSnapshotIndexFieldEvent {
        field: '$.snapshot.index';
        value: number;
    }
    interface RaftMessageSnapshotTermFieldEvent {
        field: '$.snapshot.term';
        value: number;
    }
    interface RaftMessageSnapshotConfStateVotersFieldEvent {
        field: '$.snapshot.confState.voters[]';
        index: number;
        value: string;
    }
    interface RaftMessageSnapshotConfStateLearnersFieldEvent {
        field: '$.snapshot.confState.learners[]';
        index: number;
        value: string;
    }
    interface RaftMessageSnapshotConfStateVotersOutgoingFieldEvent {
        field: '$.snapshot.confState.votersOutgoing[]';
        index: number;
        value: string;
    }
    interface RaftMessageSnapshotConfStateLearnersNextFieldEvent {
        field: '$.snapshot.confState.learnersNext[]';
        index: number;
        value: string;
    }
    interface RaftMessageSnapshotConfStateAutoLeaveFieldEvent {
        field: '$.snapshot.confState.autoLeave';
        value: boolean;
    }
    interface RaftMessageSnapshotDataFieldEvent {
        field: '$.snapshot.data';
        value: Uint8Array<ArrayBuffer>;
    }
    interface RaftMessageRejectFieldEvent {
        field: '$.reject';
        value: boolean;
    }
    interface RaftMessageRejectHintFieldEvent {
        field: '$.rejectHint';
        value: number;
    }
    interface RaftMessageContextFieldEvent {
        field: '$.context';
        value: Uint8Array<ArrayBuffer>;
    }
    function encode(obj: Partial<RaftMessage>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<RaftMessage>): RaftMessage;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<RaftMessage>): Generator<RaftMessageTypeFieldEvent | RaftMessageToFieldEvent | RaftMessageFromFieldEvent | RaftMessageTermFieldEvent | RaftMessageLogTermFieldEvent | RaftMessageIndexFieldEvent | RaftMessageEntriesTermFieldEvent | RaftMessageEntriesIndexFieldEvent | RaftMessageEntriesTypeFieldEvent | RaftMessageEntriesDataFieldEvent | RaftMessageCommitFieldEvent | RaftMessageSnapshotIndexFieldEvent | RaftMessageSnapshotTermFieldEvent | RaftMessageSnapshotConfStateVotersFieldEvent | RaftMessageSnapshotConfStateLearnersFieldEvent | RaftMessageSnapshotConfStateVotersOutgoingFieldEvent | RaftMessageSnapshotConfStateLearnersNextFieldEvent | RaftMessageSnapshotConfStateAutoLeaveFieldEvent | RaftMessageSnapshotDataFieldEvent | RaftMessageRejectFieldEvent | RaftMessageRejectHintFieldEvent | RaftMessageContextFieldEvent>;
}
export interface RaftEntry {
    term: number;
    index: number;
    type: RaftEntry.Type;
    data: Uint8Array<ArrayBuffer>;
}
export declare namespace RaftEntry {
    enum Type {
        NORMAL = "NORMAL",
        CONF_CHANGE = "CONF_CHANGE"
    }
    namespace Type {
        const codec: () => Codec<Type>;
    }
    const codec: () => Codec<RaftEntry>;
    interface RaftEntryTermFieldEvent {
        field: '$.term';
        value: number;
    }
    interface RaftEntryIndexFieldEvent {
        field: '$.index';
        value: number;
    }
    interface RaftEntryTypeFieldEvent {
        field: '$.type';
        value: RaftEntry.Type;
    }
    interface RaftEntryDataFieldEvent {
        field: '$.data';
        value: Uint8Array<ArrayBuffer>;
    }
    function encode(obj: Partial<RaftEntry>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<RaftEntry>): RaftEntry;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<RaftEntry>): Generator<RaftEntryTermFieldEvent | RaftEntryIndexFieldEvent | RaftEntryTypeFieldEvent | RaftEntryDataFieldEvent>;
}
export interface RaftConfState {
    voters: string[];
    learners: string[];
    votersOutgoing: string[];
    learnersNext: string[];
    autoLeave: boolean;
}
export declare namespace RaftConfState {
    const codec: () => Codec<RaftConfState>;
    interface RaftConfStateVotersFieldEvent {
        field: '$.voters[]';
        index: number;
        value: string;
    }
    interface RaftConfStateLearnersFieldEvent {
        field: '$.learners[]';
        index: number;
        value: string;
    }
    interface RaftConfStateVotersOutgoingFieldEvent {
        field: '$.votersOutgoing[]';
        index: number;
        value: string;
    }
    interface RaftConfStateLearnersNextFieldEvent {
        field: '$.learnersNext[]';
        index: number;
        value: string;
    }
    interface RaftConfStateAutoLeaveFieldEvent {
        field: '$.autoLeave';
        value: boolean;
    }
    function encode(obj: Partial<RaftConfState>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<RaftConfState>): RaftConfState;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<RaftConfState>): Generator<RaftConfStateVotersFieldEvent | RaftConfStateLearnersFieldEvent | RaftConfStateVotersOutgoingFieldEvent | RaftConfStateLearnersNextFieldEvent | RaftConfStateAutoLeaveFieldEvent>;
}
export interface RaftSnapshot {
    index: number;
    term: number;
    confState?: RaftConfState;
    data: Uint8Array<ArrayBuffer>;
}
export declare namespace RaftSnapshot {
    const codec: () => Codec<RaftSnapshot>;
    interface RaftSnapshotIndexFieldEvent {
        field: '$.index';
        value: number;
    }
    interface RaftSnapshotTermFieldEvent {
        field: '$.term';
        value: number;
    }
    interface RaftSnapshotConfStateVotersFieldEvent {
        field: '$.confState.voters[]';
        index: number;
        value: string;
    }
    interface RaftSnapshotConfStateLearnersFieldEvent {
        field: '$.confState.learners[]';
        index: number;
        value: string;
    }
    interface RaftSnapshotConfStateVotersOutgoingFieldEvent {
        field: '$.confState.votersOutgoing[]';
        index: number;
        value: string;
    }
    interface RaftSnapshotConfStateLearnersNextFieldEvent {
        field: '$.confState.learnersNext[]';
        index: number;
        value: string;
    }
    interface RaftSnapshotConfStateAutoLeaveFieldEvent {
        field: '$.confState.autoLeave';
        value: boolean;
    }
    interface RaftSnapshotDataFieldEvent {
        field: '$.data';
        value: Uint8Array<ArrayBuffer>;
    }
    function encode(obj: Partial<RaftSnapshot>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<RaftSnapshot>): RaftSnapshot;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<RaftSnapshot>): Generator<RaftSnapshotIndexFieldEvent | RaftSnapshotTermFieldEvent | RaftSnapshotConfStateVotersFieldEvent | RaftSnapshotConfStateLearnersFieldEvent | RaftSnapshotConfStateVotersOutgoingFieldEvent | RaftSnapshotConfStateLearnersNextFieldEvent | RaftSnapshotConfStateAutoLeaveFieldEvent | RaftSnapshotDataFieldEvent>;
}
export interface RaftProposal {
    id: Uint8Array<ArrayBuffer>;
    command: Uint8Array<ArrayBuffer>;
}
export declare namespace RaftProposal {
    const codec: () => Codec<RaftProposal>;
    interface RaftProposalIdFieldEvent {
        field: '$.id';
        value: Uint8Array<ArrayBuffer>;
    }
    interface RaftProposalCommandFieldEvent {
        field: '$.command';
        value: Uint8Array<ArrayBuffer>;
    }
    function encode(obj: Partial<RaftProposal>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<RaftProposal>): RaftProposal;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<RaftProposal>): Generator<RaftProposalIdFieldEvent | RaftProposalCommandFieldEvent>;
}
