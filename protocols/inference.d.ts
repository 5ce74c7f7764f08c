import type { Codec, DecodeOptions } from 'protons-runtime';
import type { Uint8ArrayList } from 'uint8arraylist';
export interface InferenceRequest {
    kind: InferenceRequest.Kind;
    jobId: bigint;
    modelCid: string;
    modelName: string;
    body: Uint8Array<ArrayBuffer>;
}
export declare namespace InferenceRequest {
    enum Kind {
        GENERATE = "GENERATE",
        EMBED = "EMBED",
        RERANK = "RERANK"
    }
    namespace Kind {
        const codec: () => Codec<Kind>;
    }
    const codec: () => Codec<InferenceRequest>;
    interface InferenceRequestKindFieldEvent {
        field: '$.kind';
        value: InferenceRequest.Kind;
    }
    interface InferenceRequestJobIdFieldEvent {
        field: '$.jobId';
        value: bigint;
    }
    interface InferenceRequestModelCidFieldEvent {
        field: '$.modelCid';
        value: string;
    }
    interface InferenceRequestModelNameFieldEvent {
        field: '$.modelName';
        value: string;
    }
    interface InferenceRequestBodyFieldEvent {
        field: '$.body';
        value: Uint8Array<ArrayBuffer>;
    }
    function encode(obj: Partial<InferenceRequest>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<InferenceRequest>): InferenceRequest;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<InferenceRequest>): Generator<InferenceRequestKindFieldEvent | InferenceRequestJobIdFieldEvent | InferenceRequestModelCidFieldEvent | InferenceRequestModelNameFieldEvent | InferenceRequestBodyFieldEvent>;
}
export interface InferenceResponse {
    type: InferenceResponse.Type;
    text: string;
    body: Uint8Array<ArrayBuffer>;
    errorName: string;
    errorMessage: string;
}
export declare namespace InferenceResponse {
    enum Type {
        CHUNK = "CHUNK",
        DONE = "DONE",
        ERROR = "ERROR",
        START = "START"
    }
    namespace Type {
        const codec: () => Codec<Type>;
    }
    const codec: () => Codec<InferenceResponse>;
    interface InferenceResponseTypeFieldEvent {
        field: '$.type';
        value: InferenceResponse.Type;
    }
    interface InferenceResponseTextFieldEvent {
        field: '$.text';
        value: string;
    }
    interface InferenceResponseBodyFieldEvent {
        field: '$.body';
        value: Uint8Array<ArrayBuffer>;
    }
    interface InferenceResponseErrorNameFieldEvent {
        field: '$.errorName';
        value: string;
    }
    interface InferenceResponseErrorMessageFieldEvent {
        field: '$.errorMessage';
        value: string;
    }
    function encode(obj: Partial<InferenceResponse>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<InferenceResponse>): InferenceResponse;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<InferenceResponse>): Generator<InferenceResponseTypeFieldEvent | InferenceResponseTextFieldEvent | InferenceResponseBodyFieldEvent | InferenceResponseErrorNameFieldEvent | InferenceResponseErrorMessageFieldEvent>;
}
