// Apart from log.ts so that reading the configuration (every CLI command does) does not load pino.
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
