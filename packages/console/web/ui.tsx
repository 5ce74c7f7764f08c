// Small pieces every page uses: polling a route, running an action with its error shown.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks'
import type { ComponentChildren } from 'preact'

export interface Poll<T> {
  data: T | undefined
  error: string | undefined
  reload: () => void
}

/** Loads `load` now and every `everyMs` (0: once) while the page is shown. */
export function usePoll<T> (load: () => Promise<T>, everyMs = 0, deps: unknown[] = []): Poll<T> {
  const [data, setData] = useState<T>()
  const [error, setError] = useState<string>()
  const loader = useRef(load)
  loader.current = load
  const reload = useCallback(() => {
    loader.current().then(value => { setData(value); setError(undefined) }, (err: Error) => { setError(err.message) })
  }, [])
  useEffect(() => {
    reload()
    if (everyMs === 0) return
    const timer = setInterval(reload, everyMs)
    return () => { clearInterval(timer) }
  }, deps)
  return { data, error, reload }
}

/** Runs async actions one at a time, keeping the last error (or result message) to show. */
export function useAction (): { busy: boolean, message: string | undefined, error: string | undefined, run: (work: () => Promise<string | void>) => Promise<void> } {
  const [busy, setBusy] = useState(false)
  const [message, setMessage] = useState<string>()
  const [error, setError] = useState<string>()
  const run = useCallback(async (work: () => Promise<string | void>) => {
    setBusy(true)
    setError(undefined)
    setMessage(undefined)
    try {
      const result = await work()
      if (typeof result === 'string') setMessage(result)
    } catch (err) {
      setError((err as Error).message)
    } finally {
      setBusy(false)
    }
  }, [])
  return { busy, message, error, run }
}

export function Status ({ error, message }: { error?: string, message?: string }): ComponentChildren {
  return (
    <>
      {error != null && <p class='error' role='alert'>{error}</p>}
      {message != null && <p class='message'>{message}</p>}
    </>
  )
}

export function Section ({ title, children }: { title: string, children: ComponentChildren }): ComponentChildren {
  return <section><h2>{title}</h2>{children}</section>
}

/** The route: #/<page>?<params>. */
export function route (): { page: string, params: URLSearchParams } {
  const [page = '', query = ''] = location.hash.replace(/^#\/?/, '').split('?')
  return { page, params: new URLSearchParams(query) }
}
