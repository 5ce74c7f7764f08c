import type { Codec, DecodeOptions } from 'protons-runtime';
import type { Uint8ArrayList } from 'uint8arraylist';
export interface StepRequest {
    jobId: bigint;
    round: bigint;
    syncCid: string;
    update: Uint8Array<ArrayBuffer>;
    version: bigint;
    samples: number[];
    client: string;
    peerCount: number;
    peerFirst: boolean;
}
export declare namespace StepRequest {
    const codec: () => Codec<StepRequest>;
    interface StepRequestJobIdFieldEvent {
        field: '$.jobId';
        value: bigint;
    }
    interface StepRequestRoundFieldEvent {
        field: '$.round';
        value: bigint;
    }
    interface StepRequestSyncCidFieldEvent {
        field: '$.syncCid';
        value: string;
    }
    interface StepRequestUpdateFieldEvent {
        field: '$.update';
        value: Uint8Array<ArrayBuffer>;
    }
    interface StepRequestVersionFieldEvent {
        field: '$.version';
        value: bigint;
    }
    interface StepRequestSamplesFieldEvent {
        field: '$.samples[]';
        index: number;
        value: number;
    }
    interface StepRequestClientFieldEvent {
        field: '$.client';
        value: string;
    }
    interface StepRequestPeerCountFieldEvent {
        field: '$.peerCount';
        value: number;
    }
    interface StepRequestPeerFirstFieldEvent {
        field: '$.peerFirst';
        value: boolean;
    }
    function encode(obj: Partial<StepRequest>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<StepRequest>): StepRequest;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<StepRequest>): Generator<StepRequestJobIdFieldEvent | StepRequestRoundFieldEvent | StepRequestSyncCidFieldEvent | StepRequestUpdateFieldEvent | StepRequestVersionFieldEvent | StepRequestSamplesFieldEvent | StepRequestClientFieldEvent | StepRequestPeerCountFieldEvent | StepRequestPeerFirstFieldEvent>;
}
export interface StepResponse {
    status: StepResponse.Status;
    round: bigint;
    gradient: Uint8Array<ArrayBuffer>;
    count: number;
    lossSum: number;
    correct: number;
    labels: number;
    computeMs: number;
    errorName: string;
    errorMessage: string;
}
export declare namespace StepResponse {
    enum Status {
        OK = "OK",
        OUT_OF_SYNC = "OUT_OF_SYNC",
        ERROR = "ERROR"
    }
    namespace Status {
        const codec: () => Codec<Status>;
    }
    const codec: () => Codec<StepResponse>;
    interface StepResponseStatusFieldEvent {
        field: '$.status';
        value: StepResponse.Status;
    }
    interface StepResponseRoundFieldEvent {
        field: '$.round';
        value: bigint;
    }
    interface StepResponseGradientFieldEvent {
        field: '$.gradient';
        value: Uint8Array<ArrayBuffer>;
    }
    interface StepResponseCountFieldEvent {
        field: '$.count';
        value: number;
    }
    interface StepResponseLossSumFieldEvent {
        field: '$.lossSum';
        value: number;
    }
    interface StepResponseCorrectFieldEvent {
        field: '$.correct';
        value: number;
    }
    interface StepResponseLabelsFieldEvent {
        field: '$.labels';
        value: number;
    }
    interface StepResponseComputeMsFieldEvent {
        field: '$.computeMs';
        value: number;
    }
    interface StepResponseErrorNameFieldEvent {
        field: '$.errorName';
        value: string;
    }
    interface StepResponseErrorMessageFieldEvent {
        field: '$.errorMessage';
        value: string;
    }
    function encode(obj: Partial<StepResponse>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<StepResponse>): StepResponse;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<StepResponse>): Generator<StepResponseStatusFieldEvent | StepResponseRoundFieldEvent | StepResponseGradientFieldEvent | StepResponseCountFieldEvent | StepResponseLossSumFieldEvent | StepResponseCorrectFieldEvent | StepResponseLabelsFieldEvent | StepResponseComputeMsFieldEvent | StepResponseErrorNameFieldEvent | StepResponseErrorMessageFieldEvent>;
}
