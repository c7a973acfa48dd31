namespace Consort.Weights.Config;

/// <summary>Where the embedding row of one token comes from (mergekit's <c>tokenizer.tokens</c> entries).</summary>
public enum TokenSourceKind
{
    /// <summary>mergekit's defaults: the model's own row, else the base's, else the one model that has it, else the mean.</summary>
    Default,
    /// <summary>The same token's row from one model (<c>source: MODEL</c>).</summary>
    Model,
    /// <summary>Another token's row from one model (<c>source: {kind: model_token, model, token | token_id}</c>).</summary>
    ModelToken,
    /// <summary>A zero row (<c>source: {kind: zero}</c>).</summary>
    Zero,
}

/// <summary>One per-token override of the embedding rows.</summary>
/// <param name="Kind">Where the row comes from.</param>
/// <param name="Model">The donor model (absolute path) for <see cref="TokenSourceKind.Model"/> and <see cref="TokenSourceKind.ModelToken"/>.</param>
/// <param name="Token">The donor token text (<see cref="TokenSourceKind.ModelToken"/>), or null when <paramref name="TokenId"/> is given.</param>
/// <param name="TokenId">The donor token id (<see cref="TokenSourceKind.ModelToken"/>).</param>
/// <param name="Force">Use this row for every model, even those that have the token.</param>
public sealed record TokenEmbeddingSource(TokenSourceKind Kind, string? Model, string? Token, int? TokenId, bool Force);

/// <summary>
/// mergekit's tokenizer settings (<c>tokenizer_source: union|base|MODEL</c>, or <c>tokenizer: {source, tokens,
/// pad_to_multiple_of}</c>): which vocabulary the output has, and per-token overrides of where embedding rows come from.
/// </summary>
/// <param name="Source">"union", "base", or a model's absolute path.</param>
/// <param name="Tokens">Per-token overrides (tokens not in the vocabulary are added).</param>
/// <param name="PadToMultipleOf">Pad the vocabulary to a multiple of this (padding rows are the mean row), or null.</param>
public sealed record TokenizerSettings(string Source, IReadOnlyDictionary<string, TokenEmbeddingSource> Tokens, int? PadToMultipleOf)
{
    /// <summary>The output takes the union of the inputs' vocabularies (base's tokens first, at their ids).</summary>
    public bool IsUnion => Source == "union";
    /// <summary>The output takes the base model's vocabulary.</summary>
    public bool IsBase => Source == "base";

    /// <summary>Every model path the settings name (a source model, donors of overrides).</summary>
    public IEnumerable<string> ModelPaths =>
        (IsUnion || IsBase ? [] : new[] { Source }).Concat(Tokens.Values.Where(t => t.Model is not null).Select(t => t.Model!));

    /// <summary>
    /// Parses <c>tokenizer_source</c> (a string) or <c>tokenizer</c> (a mapping, <paramref name="full"/>); model paths go
    /// through <paramref name="resolve"/>. Null in, null out.
    /// </summary>
    public static TokenizerSettings? Parse(object? node, bool full, Func<object?, string> resolve, string where)
    {
        if (node is null) return null;
        string Source(object? s, string what) => s switch
        {
            "union" or "base" => (string)s,
            string => resolve(s),
            _ => throw new ConfigException($"{where}: {what} must be union, base or a model"),
        };
        if (!full) return new TokenizerSettings(Source(node, "'tokenizer_source'"), new Dictionary<string, TokenEmbeddingSource>(), null);
        if (node is not IDictionary<string, object?> m) throw new ConfigException($"{where}: 'tokenizer' must be a mapping with source, tokens, pad_to_multiple_of");
        foreach (var k in m.Keys)
            if (k is not ("source" or "tokens" or "pad_to_multiple_of")) throw new ConfigException($"{where}: tokenizer: unknown key '{k}' (known: source, tokens, pad_to_multiple_of)");
        int? pad = null;
        if (m.TryGetValue("pad_to_multiple_of", out var pv) && pv is not null)
        {
            if (pv is not double d || d != Math.Floor(d) || d < 1 || d > 1 << 20)
                throw new ConfigException($"{where}: tokenizer.pad_to_multiple_of is {pv}; it must be a whole number from 1 to {1 << 20}");
            pad = (int)d;
        }
        var tokens = new Dictionary<string, TokenEmbeddingSource>();
        if (m.TryGetValue("tokens", out var tv) && tv is not null)
        {
            if (tv is not IDictionary<string, object?> tm) throw new ConfigException($"{where}: tokenizer.tokens must map token texts to {{source, force}}");
            foreach (var (token, cfg) in tm)
            {
                string at = $"{where}: tokenizer.tokens['{token}']";
                if (cfg is not IDictionary<string, object?> c) throw new ConfigException($"{at} must be a mapping with source and force");
                foreach (var k in c.Keys) if (k is not ("source" or "force")) throw new ConfigException($"{at}: unknown key '{k}' (known: source, force)");
                bool force = c.TryGetValue("force", out var f) && f is not null && (f as bool? ?? throw new ConfigException($"{at}: force must be true or false"));
                tokens[token] = V(c, "source") switch
                {
                    null => new TokenEmbeddingSource(TokenSourceKind.Default, null, null, null, force),
                    string s => new TokenEmbeddingSource(TokenSourceKind.Model, resolve(s), null, null, force),
                    IDictionary<string, object?> sm => Kind(sm, at, force, resolve),
                    var o => throw new ConfigException($"{at}: source must be a model or {{kind: zero}} / {{kind: model_token, model, token}}, got {o}"),
                };
            }
        }
        return new TokenizerSettings(m.TryGetValue("source", out var src) && src is not null ? Source(src, "tokenizer.source") : "union", tokens, pad);
    }

    private static object? V(IDictionary<string, object?> d, string key) => d.TryGetValue(key, out var v) ? v : null;

    private static TokenEmbeddingSource Kind(IDictionary<string, object?> sm, string at, bool force, Func<object?, string> resolve)
    {
        switch (V(sm, "kind"))
        {
            case "zero":
                if (sm.Keys.Any(k => k != "kind")) throw new ConfigException($"{at}: a zero source takes no other keys");
                return new TokenEmbeddingSource(TokenSourceKind.Zero, null, null, null, force);
            case "model_token":
                foreach (var k in sm.Keys) if (k is not ("kind" or "model" or "token" or "token_id")) throw new ConfigException($"{at}: unknown key '{k}' (known: kind, model, token, token_id)");
                var token = V(sm, "token") as string;
                int? id = V(sm, "token_id") switch
                {
                    null => null,
                    double d when d == Math.Floor(d) && d >= 0 && d < int.MaxValue => (int)d,
                    var o => throw new ConfigException($"{at}: token_id is {o}; it must be a whole number >= 0"),
                };
                if ((token is null) == (id is null)) throw new ConfigException($"{at}: give exactly one of token and token_id");
                return new TokenEmbeddingSource(TokenSourceKind.ModelToken, resolve(V(sm, "model")), token, id, force);
            case var k:
                throw new ConfigException($"{at}: source kind '{k}' is not known (known: zero, model_token)");
        }
    }
}
