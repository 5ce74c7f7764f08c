import type { Codec, DecodeOptions } from 'protons-runtime';
import type { Uint8ArrayList } from 'uint8arraylist';
export interface BlockRequest {
    id: number;
    cid: Uint8Array<ArrayBuffer>;
}
export declare namespace BlockRequest {
    const codec: () => Codec<BlockRequest>;
    interface BlockRequestIdFieldEvent {
        field: '$.id';
        value: number;
    }
    interface BlockRequestCidFieldEvent {
        field: '$.cid';
        value: Uint8Array<ArrayBuffer>;
    }
    function encode(obj: Partial<BlockRequest>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<BlockRequest>): BlockRequest;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<BlockRequest>): Generator<BlockRequestIdFieldEvent | BlockRequestCidFieldEvent>;
}
export interface BlockResponse {
    id: number;
    status: BlockResponse.Status;
    block: Uint8Array<ArrayBuffer>;
}
export declare namespace BlockResponse {
    enum Status {
        OK = "OK",
        MISSING = "MISSING",
        TOO_LARGE = "TOO_LARGE",
        ERROR = "ERROR"
    }
    namespace Status {
        const codec: () => Codec<Status>;
    }
    const codec: () => Codec<BlockResponse>;
    interface BlockResponseIdFieldEvent {
        field: '$.id';
        value: number;
    }
    interface BlockResponseStatusFieldEvent {
        field: '$.status';
        value: BlockResponse.Status;
    }
    interface BlockResponseBlockFieldEvent {
        field: '$.block';
        value: Uint8Array<ArrayBuffer>;
    }
    function encode(obj: Partial<BlockResponse>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<BlockResponse>): BlockResponse;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<BlockResponse>): Generator<BlockResponseIdFieldEvent | BlockResponseStatusFieldEvent | BlockResponseBlockFieldEvent>;
}
export interface ChannelOffer {
    port: number;
    token: Uint8Array<ArrayBuffer>;
    key: Uint8Array<ArrayBuffer>;
}
export declare namespace ChannelOffer {
    const codec: () => Codec<ChannelOffer>;
    interface ChannelOfferPortFieldEvent {
        field: '$.port';
        value: number;
    }
    interface ChannelOfferTokenFieldEvent {
        field: '$.token';
        value: Uint8Array<ArrayBuffer>;
    }
    interface ChannelOfferKeyFieldEvent {
        field: '$.key';
        value: Uint8Array<ArrayBuffer>;
    }
    function encode(obj: Partial<ChannelOffer>): Uint8Array<ArrayBuffer>;
    function decode(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ChannelOffer>): ChannelOffer;
    function stream(buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ChannelOffer>): Generator<ChannelOfferPortFieldEvent | ChannelOfferTokenFieldEvent | ChannelOfferKeyFieldEvent>;
}
