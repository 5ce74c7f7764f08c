import type { Codec, DecodeOptions } from 'protons-runtime';
import type { Uint8ArrayList } from 'uint8arraylist';
export interface ClusterRequest {
    method: ClusterRequest.Method;
    body: Uint8Array<ArrayBuffer>;
}
export declare namespace ClusterRequest {
    enum Method {
        JOIN = "JOIN",
        PIN_STATUS = "PIN_STATUS",
        SEARCH = "SEARCH"
    }
    namespace Method {
        const codec: () => Codec<Method>;
    }
    const codec: () => Codec<ClusterRequest>;
    interface ClusterRequestMethodFieldEvent {
        field: '$.method';
        value: ClusterRequest.Method;
    }
    interface ClusterRequestBodyFieldEvent {
        field: '$.body';
        value: Uint8Array<ArrayBuffer>;
    }
    function encode(obj: Partial<ClusterRequest>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ClusterRequest>): ClusterRequest;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ClusterRequest>): Generator<ClusterRequestMethodFieldEvent | ClusterRequestBodyFieldEvent>;
}
export interface ClusterResponse {
    ok: boolean;
    body: Uint8Array<ArrayBuffer>;
    errorName: string;
    errorMessage: string;
}
export declare namespace ClusterResponse {
    const codec: () => Codec<ClusterResponse>;
    interface ClusterResponseOkFieldEvent {
        field: '$.ok';
        value: boolean;
    }
    interface ClusterResponseBodyFieldEvent {
        field: '$.body';
        value: Uint8Array<ArrayBuffer>;
    }
    interface ClusterResponseErrorNameFieldEvent {
        field: '$.errorName';
        value: string;
    }
    interface ClusterResponseErrorMessageFieldEvent {
        field: '$.errorMessage';
        value: string;
    }
    function encode(obj: Partial<ClusterResponse>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ClusterResponse>): ClusterResponse;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ClusterResponse>): Generator<ClusterResponseOkFieldEvent | ClusterResponseBodyFieldEvent | ClusterResponseErrorNameFieldEvent | ClusterResponseErrorMessageFieldEvent>;
}
