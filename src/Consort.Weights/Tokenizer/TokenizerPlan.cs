using Consort.Formats;
using Consort.Weights.Config;
using Consort.Weights.Engine;

namespace Consort.Weights.Tokenizer;

/// <summary>
/// mergekit's tokenizer step, planned before any tensor is merged: the output vocabulary (union: the base's tokens at
/// their ids, then every other model's new tokens in model order; base; or a named model's), and for each input
/// where each output row of its embedding and head comes from. A model has its own row for the tokens it knows;
/// for the others mergekit's defaults apply (the base's row if the base has the token, the one model's row if only
/// one has it, else the mean of the rows of the models that have it; a zero row if none has it), unless
/// <c>tokens:</c> says otherwise (another model's row, another token's row, zero; <c>force</c> for every model).
/// The remapped tensors then go through the merge method like any other.
/// </summary>
public sealed class TokenizerPlan
{
    private readonly int[][] _codes;
    private readonly List<RowRemap.Composite> _composites;

    private TokenizerPlan(TokenizerSettings settings, Vocabulary output, int rows, Vocabulary[] inputs, int[][] permutations, int[][] codes, List<RowRemap.Composite> composites)
    {
        Settings = settings; Output = output; Rows = rows; Inputs = inputs; Permutations = permutations; _codes = codes; _composites = composites;
    }

    /// <summary>The settings planned.</summary>
    public TokenizerSettings Settings { get; }
    /// <summary>The output vocabulary (tokens in id order, without padding).</summary>
    public Vocabulary Output { get; }
    /// <summary>Rows of the output's embedding and head (the vocabulary padded to pad_to_multiple_of).</summary>
    public int Rows { get; }
    /// <summary>Each input's vocabulary, by engine source index.</summary>
    public IReadOnlyList<Vocabulary> Inputs { get; }
    /// <summary>Per input: output token id → the input's token id, or -1.</summary>
    public IReadOnlyList<int[]> Permutations { get; }

    /// <summary>The row map of input <paramref name="source"/> for one token-row tensor.</summary>
    public RowRemap Remap(int source) => new(_codes[source], _composites.ToArray(), Output.Count);

    /// <summary>
    /// Plans the tokenizer step of <paramref name="config"/> over the opened inputs (<paramref name="paths"/>[i] is
    /// <paramref name="sources"/>[i]; the base, when given, is first). Every problem is a <see cref="ConfigException"/>
    /// naming the token or model.
    /// </summary>
    public static TokenizerPlan Build(MergeConfig config, IReadOnlyList<string> paths, IReadOnlyList<ITensorSource> sources)
    {
        var settings = config.Tokenizer ?? throw new ArgumentException("the config has no tokenizer settings");
        int Rows(ITensorSource s) => (int)(s.Tensors.FirstOrDefault(t => Vocabulary.IsVocabularyTensor(t.Name))?.Shape[0]
            ?? throw new ModelFileException(s.Path, "has no token embedding (token_embd.weight / model.embed_tokens.weight) to remap"));
        var inputs = sources.Select(s => Vocabulary.Read(s, Rows(s))).ToArray();
        int baseIndex = config.BaseModel is null ? 0 : paths.ToList().IndexOf(config.BaseModel);
        string Name(int i) => Path.GetFileName(paths[i]);

        // The output vocabulary.
        Vocabulary output;
        if (settings.IsUnion)
        {
            var kinds = inputs.Select(v => v.Kind).Distinct().ToList();
            if (kinds.Count > 1)
                throw new ConfigException($"tokenizer source union: the models' tokenizers are of different kinds ({string.Join(", ", inputs.Select((v, i) => $"{Name(i)}: {v.Kind}"))}); use source: base or a model");
            var tokens = inputs[baseIndex].Tokens.ToList();
            var seen = tokens.Select(t => t.Text).ToHashSet(StringComparer.Ordinal);
            var order = new[] { baseIndex }.Concat(Enumerable.Range(0, inputs.Length).Where(i => i != baseIndex));
            List<string>? merges = inputs[baseIndex].Merges?.ToList();
            var mergeSet = merges?.ToHashSet(StringComparer.Ordinal);
            foreach (var i in order)
            {
                foreach (var t in inputs[i].Tokens)
                    if (seen.Add(t.Text)) tokens.Add(t);
                if (merges is not null && inputs[i].Merges is { } more)
                    foreach (var m in more) if (mergeSet!.Add(m)) merges.Add(m);
            }
            output = new Vocabulary(inputs[baseIndex].Kind, tokens, merges, inputs[baseIndex].ChatTemplate, inputs[baseIndex].Path);
        }
        else if (settings.IsBase) output = inputs[baseIndex];
        else
        {
            int at = paths.ToList().IndexOf(settings.Source);
            output = at >= 0 ? inputs[at] : Vocabulary.Read(settings.Source);
        }
        var added = settings.Tokens.Keys.Where(t => output.IdOf(t) < 0).ToList();
        if (added.Count > 0)
            output = new Vocabulary(output.Kind, output.Tokens.Concat(added.Select(t => new TokenEntry(t, 0, 4))).ToList(), output.Merges, output.ChatTemplate, output.Path);
        int count = output.Count;
        int rows = settings.PadToMultipleOf is int pad && count % pad != 0 ? (count / pad + 1) * pad : count;

        // Permutations and, per output token, the default row for models that lack it.
        int k = inputs.Length;
        var perm = inputs.Select(v => Enumerable.Range(0, count).Select(t => v.IdOf(output.Tokens[t].Text)).ToArray()).ToArray();
        var composites = new List<RowRemap.Composite>();
        var defaults = new int[count]; // code of the default row (-1-c), or 0 when none is needed
        var forced = new bool[count];
        int AddComposite(RowRemap.Composite c) { composites.Add(c); return -composites.Count; }
        int SourceOf(string path, string token)
        {
            int s = paths.ToList().IndexOf(path);
            return s >= 0 ? s : throw new ConfigException($"tokenizer.tokens['{token}']: model {Path.GetFileName(path)} is not one of the merged models");
        }
        for (int t = 0; t < count; t++)
        {
            string text = output.Tokens[t].Text;
            var present = Enumerable.Range(0, k).Where(i => perm[i][t] >= 0).ToArray();
            if (settings.Tokens.TryGetValue(text, out var cfg) && cfg.Kind != TokenSourceKind.Default)
            {
                forced[t] = cfg.Force;
                switch (cfg.Kind)
                {
                    case TokenSourceKind.Zero:
                        defaults[t] = AddComposite(new([], []));
                        break;
                    case TokenSourceKind.Model:
                        int s = SourceOf(cfg.Model!, text);
                        if (perm[s][t] < 0) throw new ConfigException($"tokenizer.tokens['{text}']: {Name(s)} does not have this token");
                        defaults[t] = AddComposite(new([s], [perm[s][t]]));
                        break;
                    case TokenSourceKind.ModelToken:
                        int d = SourceOf(cfg.Model!, text);
                        int id = cfg.TokenId ?? inputs[d].IdOf(cfg.Token!);
                        if (id < 0 || id >= inputs[d].Count)
                            throw new ConfigException($"tokenizer.tokens['{text}']: {Name(d)} has no token {(cfg.Token is null ? $"id {cfg.TokenId} (it has {inputs[d].Count})" : $"'{cfg.Token}'")}");
                        defaults[t] = AddComposite(new([d], [id]));
                        break;
                }
                continue;
            }
            if (present.Length == k) continue; // everyone has it: no default needed
            if (present.Length == 1) defaults[t] = AddComposite(new([present[0]], [perm[present[0]][t]]));
            else if (present.Length == 0) defaults[t] = AddComposite(new([], []));
            else if (perm[baseIndex][t] >= 0 && config.BaseModel is not null) defaults[t] = AddComposite(new([baseIndex], [perm[baseIndex][t]]));
            else defaults[t] = AddComposite(new(present, present.Select(i => perm[i][t]).ToArray()));
        }
        int padCode = rows > count ? AddComposite(new([], [], Pad: true)) : 0;
        var codes = new int[k][];
        for (int i = 0; i < k; i++)
        {
            codes[i] = new int[rows];
            for (int t = 0; t < count; t++)
                codes[i][t] = perm[i][t] >= 0 && !forced[t] ? perm[i][t] : defaults[t] != 0 ? defaults[t]
                    : throw new InvalidOperationException($"no row for token '{output.Tokens[t].Text}' in {Name(i)}");
            for (int t = count; t < rows; t++) codes[i][t] = padCode;
        }
        return new TokenizerPlan(settings, output, rows, inputs, perm, codes, composites);
    }
}
