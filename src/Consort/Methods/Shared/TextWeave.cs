using System.Diagnostics;
using System.Text;
using Consort.Decoding;
using Microsoft.Extensions.AI;

namespace Consort.Methods;

/// <summary>
/// The answer that several <see cref="TokenTrack"/>s write together, token by token or patch by patch: what one member
/// writes is handed to the others as text once it is complete (no half characters), so members with different
/// tokenizers stay on one text. Records who wrote which span, ends at the task's stop strings, and turns into the
/// collaboration's response with one trace entry per member.
/// </summary>
public sealed class TextWeave : IDisposable
{
    private readonly StringBuilder _text = new();
    private readonly List<int> _run = [];
    private readonly string[] _stops;
    private readonly List<(int Writer, StringBuilder Text)> _spans = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly bool _shared;
    private int _owner = -1, _runEmitted;

    /// <summary>A weave over <paramref name="tracks"/> that ends at the first of <paramref name="stops"/>. With
    /// <paramref name="sharedVocabulary"/>, written tokens reach the other tracks as they are (not re-tokenized).</summary>
    public TextWeave(IReadOnlyList<TokenTrack> tracks, IReadOnlyList<string>? stops, bool sharedVocabulary = false)
    {
        Tracks = tracks;
        _shared = sharedVocabulary;
        _stops = stops?.Where(s => !string.IsNullOrEmpty(s)).ToArray() ?? [];
    }

    /// <summary>Starts one track per member (all after the same messages).</summary>
    public static async Task<TextWeave> StartAsync(IReadOnlyList<ConsortModel> members, IReadOnlyList<ChatMessage> messages, DecodeSettings settings, string method,
        CancellationToken cancellationToken, bool sharedVocabulary = false)
    {
        var tracks = new List<TokenTrack>();
        try
        {
            foreach (var m in members) tracks.Add(await TokenTrack.StartAsync(m, messages, method, cancellationToken).ConfigureAwait(false));
        }
        catch
        {
            foreach (var t in tracks) t.Dispose();
            throw;
        }
        return new TextWeave(tracks, settings.Stop, sharedVocabulary);
    }

    /// <summary>The members' tracks.</summary>
    public IReadOnlyList<TokenTrack> Tracks { get; }
    /// <summary>The answer so far (complete characters).</summary>
    public string Text => _text.ToString();
    /// <summary>Tokens in the answer (each written token, plus the token counts given for inserted text).</summary>
    public int Steps { get; private set; }
    /// <summary>True once a stop string was reached (the text ends before it).</summary>
    public bool Stopped { get; private set; }
    /// <summary>True when a member's context is full.</summary>
    public bool Full => Tracks.Any(t => t.Full);
    /// <summary>Tokens written per track (inserted text counts for the member it is attributed to).</summary>
    public int[] StepsBy { get; private set; } = [];

    /// <summary>Writes member <paramref name="writer"/>'s token (sampled from its own distribution).</summary>
    public async ValueTask WriteAsync(int writer, int token, CancellationToken cancellationToken)
    {
        if (_owner != writer) Flush();
        _owner = writer;
        await Tracks[writer].WriteAsync(token, cancellationToken).ConfigureAwait(false);
        if (_shared)
            for (int i = 0; i < Tracks.Count; i++)
                if (i != writer) Tracks[i].ReadToken(token);
        Count(writer, 1);
        _run.Add(token);
        var text = Tracks[writer].Tokenizer.Decode(_run);
        int safe = text.Length;
        while (safe > _runEmitted && text[safe - 1] == '\uFFFD') safe--; // an unfinished multi-byte character
        if (safe > _runEmitted && char.IsHighSurrogate(text[safe - 1])) safe--;
        if (safe > _runEmitted)
        {
            Emit(writer, text[_runEmitted..safe], writerHasIt: true, othersHaveIt: _shared);
            _runEmitted = safe;
        }
    }

    /// <summary>
    /// Adds text written elsewhere (a chosen patch, a method's own words): every track reads it. <paramref name="writer"/>
    /// is the member it is attributed to (null: the method), <paramref name="tokens"/> how many answer tokens it counts for.
    /// </summary>
    public void Insert(string text, int? writer, int tokens)
    {
        Flush();
        if (writer is { } w) Count(w, tokens); else Steps += tokens;
        Emit(writer ?? -1, text, writerHasIt: false);
    }

    private void Count(int writer, int tokens)
    {
        if (StepsBy.Length != Tracks.Count) StepsBy = new int[Tracks.Count];
        StepsBy[writer] += tokens;
        Steps += tokens;
    }

    /// <summary>Hands the rest of the current writer's text (even a partial character) to the others.</summary>
    public void Flush()
    {
        if (_owner >= 0 && _run.Count > 0)
        {
            var text = Tracks[_owner].Tokenizer.Decode(_run);
            if (text.Length > _runEmitted) Emit(_owner, text[_runEmitted..], writerHasIt: true, othersHaveIt: _shared);
        }
        _run.Clear();
        _runEmitted = 0;
        _owner = -1;
    }

    private void Emit(int writer, string piece, bool writerHasIt, bool othersHaveIt = false)
    {
        if (piece.Length == 0 || Stopped) return;
        int before = _text.Length;
        _text.Append(piece);
        if (_stops.Length > 0)
        {
            // Only a stop string that ends in the new piece can be new.
            var all = _text.ToString();
            int from = Math.Max(0, before - _stops.Max(s => s.Length) + 1);
            int cut = _stops.Select(s => all.IndexOf(s, from, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
            if (cut >= 0)
            {
                _text.Length = cut;
                Stopped = true;
                piece = cut > before ? all[before..cut] : "";
            }
        }
        if (piece.Length == 0) return;
        if (_spans.Count > 0 && _spans[^1].Writer == writer) _spans[^1].Text.Append(piece);
        else _spans.Add((writer, new StringBuilder(piece)));
        for (int i = 0; i < Tracks.Count; i++)
            if (i == writer ? !writerHasIt : !othersHaveIt) Tracks[i].Read(piece);
    }

    /// <summary>Who wrote what, in order: one span per change of writer ("(method)" for inserted words).</summary>
    public IReadOnlyList<Dictionary<string, object?>> Spans() =>
        _spans.Select(s => new Dictionary<string, object?> { ["model"] = s.Writer >= 0 ? Tracks[s.Writer].Name : "(method)", ["text"] = s.Text.ToString() }).ToList();

    /// <summary>The share of answer tokens each member wrote, by name.</summary>
    public Dictionary<string, object?> Shares()
    {
        var by = StepsBy.Length == Tracks.Count ? StepsBy : new int[Tracks.Count];
        return Tracks.Select((t, i) => KeyValuePair.Create(t.Name, (object?)(Steps == 0 ? 0.0 : (double)by[i] / Steps))).ToDictionary();
    }

    /// <summary>
    /// The finished answer: one trace entry per member (<paramref name="roles"/>[i]; the first carries <paramref name="data"/>
    /// together with the spans), the text, and why it ended.
    /// </summary>
    public ChatResponse Finish(CallTrace trace, IReadOnlyList<string> roles, IReadOnlyList<ChatMessage> messages, Dictionary<string, object?> data, bool ended)
    {
        Flush();
        string? input = CollaborationChatClient.LastUserText(messages);
        data["spans"] = Spans();
        data["token_shares"] = Shares();
        for (int i = 0; i < Tracks.Count; i++)
        {
            string output = string.Concat(_spans.Where(s => s.Writer == i).Select(s => s.Text.ToString()));
            trace.Add(Tracks[i].ToTraceEntry(roles[i], input, output, _clock.Elapsed, i == 0 ? data : null));
        }
        return CollaborationChatClient.Answer(Text, ended || Stopped ? "stop" : "length");
    }

    /// <summary>Frees every track.</summary>
    public void Dispose()
    {
        foreach (var t in Tracks) t.Dispose();
    }
}
